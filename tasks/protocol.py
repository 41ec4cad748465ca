"""The tuning protocol: the same learning-rate grid budget for every optimizer, selection on the
validation metric averaged over tuning seeds, a flag when the choice sits at the grid's edge."""
from __future__ import annotations

import math

import numpy as np

import optimizers
import tasks


def lr_grid(optimizer: str, points: int) -> list[float]:
    if points < 1:
        raise ValueError(f"tuning grid_points={points!r}: must be >= 1")
    lo, hi = optimizers.get(optimizer).lr_range
    if points == 1:
        return [float(math.sqrt(lo * hi))]
    return [float(x) for x in np.logspace(math.log10(lo), math.log10(hi), points)]


def score(run: dict, direction: str) -> float:
    """A run's tuning score, lower is better; diverged or non-finite runs score +inf."""
    v = run["final_metric"]
    if run["diverged"] or not math.isfinite(v):
        return math.inf
    return v if direction == "min" else -v


def select(runs: list[dict], task: str) -> dict:
    """Pick the lr whose mean score over tuning seeds is best. `runs` are result records."""
    if not runs:
        raise ValueError(f"task {task!r}: empty tuning sweep, nothing to select from")
    direction = tasks.get(task).metric.direction
    by_lr: dict[float, list[float]] = {}
    for r in runs:
        by_lr.setdefault(r["optimizer"]["hparams"]["lr"], []).append(score(r, direction))
    grid = sorted(by_lr)
    means = {lr: float(np.mean(s)) for lr, s in by_lr.items()}
    best = min(grid, key=lambda lr: (means[lr], lr))
    return {
        "lr": best,
        "grid": grid,
        "mean_score": [means[lr] for lr in grid],
        "at_edge": len(grid) > 1 and best in (grid[0], grid[-1]),
        "all_diverged": all(math.isinf(m) for m in means.values()),
    }


class ConfigError(ValueError):
    pass


def check_config(config: dict) -> None:
    """What the JSON Schema cannot say: names exist in the registries, seeds are disjoint, and the
    measurement task lists are subsets of the profile's tasks. Raises ConfigError naming the value."""
    def known(kind, given, valid):
        bad = [x for x in given if x not in valid]
        if bad:
            raise ConfigError(f"config {kind}: unknown {', '.join(map(repr, bad))}; valid: {', '.join(valid)}")

    known("tasks", config["tasks"], tasks.names())
    known("optimizers", config["optimizers"], optimizers.names())
    for task, names_ in config.get("task_optimizers", {}).items():
        known("task_optimizers keys", [task], config["tasks"])
        known(f"task_optimizers.{task}", names_, optimizers.names())
    known("steptime.optimizers", config["steptime"].get("optimizers", []), optimizers.names())
    for measurement in ("stability", "steptime"):
        known(f"{measurement}.tasks", config[measurement]["tasks"], config["tasks"])
    overlap = sorted(set(config["tuning"]["seeds"]) & set(config["final_seeds"]))
    if overlap:
        raise ConfigError(f"config tuning.seeds and final_seeds share {overlap}: tuning seeds must be "
                          f"disjoint from the seeds the report is computed on")
    for name in config["optimizers"]:
        fallback = optimizers.get(name).fallback
        if fallback and fallback not in optimizers.names():
            raise ConfigError(f"optimizer {name!r} falls back to unknown {fallback!r}")
