"""The tuning protocol: the same learning-rate budget for every optimizer, selection on the
validation metric averaged over tuning seeds, a flag when the choice sits at the edge of the range.

The search is a coarse log grid over the entry's ``lr_range`` followed by ``refine`` rounds that
each try the log-midpoints between the current best and its evaluated neighbours. A plain grid of
the same budget spreads its points over ranges of very different widths (5 decades for Adam, 2 for
Muon), so its resolution would differ between optimizers; refinement gives every entry a final
spacing of (coarse spacing) / 2**refine around its best value, which is what a fair comparison needs.
"""
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


def initial_grid(task: str, optimizer: str, points: int) -> list[float]:
    """The coarse grid; the task's fixed lr where it reproduces a published setting; the entry's
    default lr where it is self-tuning (learning-rate-free methods run at 1.0, as intended)."""
    fixed = tasks.get(task).fixed_lr
    if fixed is not None:
        return [float(fixed)]
    spec = optimizers.get(optimizer)
    return [float(spec.defaults["lr"])] if spec.self_tuning else lr_grid(optimizer, points)


def refinement(evaluated: list[float], best: float) -> list[float]:
    """The log-midpoints between ``best`` and its neighbours among the ``evaluated`` lrs (one at
    the ends of the range, none for a single point)."""
    grid = sorted(evaluated)
    i = grid.index(best)
    neighbours = [grid[j] for j in (i - 1, i + 1) if 0 <= j < len(grid)]
    return [float(math.sqrt(best * n)) for n in neighbours]


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
        # the coarse grid spans the entry's lr_range: its ends are the range's ends
        "at_edge": len(grid) > 1 and best in (grid[0], grid[-1]),
        "all_diverged": all(math.isinf(m) for m in means.values()),
    }
