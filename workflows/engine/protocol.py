"""The tuning protocol: the same number of trials for every optimizer on a task, each trial a point
of the optimizer's search space, selection on the validation metric averaged over >= 2 tuning
seeds, and a flag for every tuned hyperparameter whose selected value is an extreme of the design.

The search space of an entry is its ``lr_range`` times its ``search`` ranges (``OptimizerSpec``:
weight decay for the entries whose decay is decoupled, lr alone for the rest), each a log range;
a profile may replace an entry's ranges (``tuning: {search: {adamw: {lr: [1e-4, 1e-1]}}}``).

The design is quasi-random: the first ``trials`` points of a scrambled Sobol sequence (Owen
scrambling, fixed seed ``SOBOL_SEED``) in the unit cube, one axis per tuned hyperparameter (lr
first, then the others in name order), mapped to the log ranges,

    h_j = exp(log lo_j + u_j (log hi_j - log lo_j)).

Why this and not the grid + refinement used before:
- the budget is the same for every entry whatever the number of tuned hyperparameters (a grid
  grows as points**d, so an entry tuning lr × weight decay would get more trials or a coarser lr);
- a Sobol sequence fills the cube evenly in every projection (each axis alone is stratified: with
  n = 2**m points, one point in each of n equal slices of every range), which is what a search
  space whose important axis is not known in advance needs (Bergstra & Bengio 2012; AlgoPerf's
  baselines use quasi-random search for this reason);
- every trial is a draw from the same distribution over the space, so the trials are exchangeable
  and the expected best after k trials (Dodge et al. 2019, report/tuning.py) is meaningful; the
  points of an adaptive refinement are not (they concentrate where the first ones did well);
- the trials are fixed before any run: a sweep's runs are independent and reproducible, the
  generator's output being integer arithmetic on a seeded torch.Generator (bit-stable).
The cost is resolution: 8 trials put about one point per 1/8 of each log range, where the old
refinement reached 1/4 of the coarse spacing around the best lr. The sensitivity figure shows how
flat the optimum is, and the edge flag says when the range, not the optimizer, chose.

Self-tuning entries (Prodigy, D-Adaptation) run one trial at their defaults, and a task with a
fixed lr (reproducing a published setting) one trial at that lr: neither is tuned. An entry's
weight decay leaves its search space on a task where the decay policy reaches no parameter (the
convex problems' single vector, under the default "matrices" policy): tuning a setting with no
effect would spend half the design on noise.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

import optimizers
import tasks

SOBOL_SEED = 0


def search_space(task: str, optimizer: str, tuning: dict | None = None) -> dict[str, tuple[float, float]]:
    """The tuned hyperparameters of `optimizer` on `task` and their log ranges, lr first: the
    profile's `tuning.search` entry if it names the optimizer, else the entry's own; empty where
    nothing is tuned (a self-tuning entry, a task with a fixed lr)."""
    spec = optimizers.get(optimizer)
    if spec.self_tuning or tasks.get(task).fixed_lr is not None:
        return {}
    given = (tuning or {}).get("search", {}).get(optimizer)
    if given is None:
        space = spec.search_space()
        if "weight_decay" in space and not decays_a_parameter(task, optimizer):
            del space["weight_decay"]
        return space
    keys = (["lr"] if "lr" in given else []) + sorted(k for k in given if k != "lr")
    return {k: (float(given[k][0]), float(given[k][1])) for k in keys}


@functools.lru_cache(maxsize=None)
def decays_a_parameter(task: str, optimizer: str) -> bool:
    """Whether weight decay reaches any parameter of `task` (built at the smoke size: the tensors'
    ranks are the same at every size) under the task's decay policy, else the entry's."""
    from optimizers.routing import decays
    policy = tasks.get(task).decay or optimizers.get(optimizer).decay
    return any(decays(policy, p) for p in tasks.get(task).make("smoke", seed=0).model.parameters())


def design(space: dict[str, tuple[float, float]], trials: int) -> list[dict]:
    """`trials` points of the scrambled Sobol sequence mapped to the log ranges of `space`, in
    its order; an empty space gives one empty point (nothing to vary)."""
    if not (isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1):
        raise ValueError(f"tuning trials={trials!r}: must be a whole number >= 1")
    if not space:
        return [{}]
    keys = list(space)
    u = torch.quasirandom.SobolEngine(len(keys), scramble=True, seed=SOBOL_SEED).draw(trials, dtype=torch.float64)
    logs = [(math.log(lo), math.log(hi)) for lo, hi in space.values()]
    return [{k: float(math.exp(a + float(x) * (b - a))) for k, x, (a, b) in zip(keys, row, logs)}
            for row in u.tolist()]


def trials(task: str, optimizer: str, tuning: dict) -> list[dict]:
    """The hparams of each trial of a sweep (lr always included)."""
    fixed = tasks.get(task).fixed_lr
    if fixed is not None:
        return [{"lr": float(fixed)}]
    spec = optimizers.get(optimizer)
    if spec.self_tuning:
        return [{"lr": float(spec.defaults["lr"])}]
    return design(search_space(task, optimizer, tuning), tuning["trials"])


def runs_per_sweep(task: str, optimizer: str, tuning: dict) -> int:
    """Training runs of one sweep: trials × tuning seeds (what the plan costs)."""
    return len(trials(task, optimizer, tuning)) * len(tuning["seeds"])


def check_tuning(tuning: dict, optimizer_names) -> None:
    """What the schema (workflows/schemas/config.schema.yaml: the keys, trials, seeds,
    steps_fraction, the shape of `search`) cannot say of a profile's `tuning:` mapping, checked
    before any job runs: each `search` entry names an optimizer the profile runs that is tuned, at
    least one hyperparameter, each a real-valued hyperparameter of the entry with a non-empty log
    range of valid values. ValueError names the bad value and what is valid. `optimizer_names`:
    the optimizers the profile runs."""
    names = list(optimizer_names)
    for name, space in tuning.get("search", {}).items():
        if name not in names:
            raise ValueError(f"tuning.search: unknown optimizer {name!r}; valid: the profile's "
                             f"{', '.join(names)}")
        spec = optimizers.get(name)
        if spec.self_tuning:
            tuned = [o for o in names if not optimizers.get(o).self_tuning]
            raise ValueError(f"tuning.search: {name!r} is self-tuning (runs at its defaults, never tuned); "
                             f"valid: {', '.join(tuned)}")
        if not space:
            raise ValueError(f"tuning.search.{name}={space!r}: must map hyperparameter -> [lo, hi], at least one")
        for key, bounds in space.items():
            why = optimizers.search_range_error(spec, key, bounds)
            if why:
                raise ValueError(f"tuning.search.{name}.{key}={bounds!r}: {why}")


def score(run: dict, direction: str) -> float:
    """A run's tuning score, lower is better; diverged or non-finite runs score +inf."""
    v = run["final_metric"]
    if run["diverged"] or not math.isfinite(v):
        return math.inf
    return v if direction == "min" else -v


def select(runs: list[dict], task: str) -> dict:
    """The trial whose mean score over the tuning seeds is best (ties: the earlier trial). `runs`
    are the sweep's runs, each with its `trial` index and `tuned` hparams. `at_edge[h]`: the
    selected value of h is the smallest or largest tried, so the optimum may lie outside the range."""
    if not runs:
        raise ValueError(f"task {task!r}: empty tuning sweep, nothing to select from")
    direction = tasks.get(task).metric.direction
    scores: dict[int, list[float]] = {}
    tuned: dict[int, dict] = {}
    for r in runs:
        scores.setdefault(r["trial"], []).append(score(r, direction))
        tuned[r["trial"]] = r["tuned"]
    order = sorted(scores)
    means = {t: float(np.mean(scores[t])) for t in order}
    best = min(order, key=lambda t: (means[t], t))
    at_edge = {}
    for key, value in tuned[best].items():
        tried = sorted({tuned[t][key] for t in order})
        at_edge[key] = len(tried) > 1 and value in (tried[0], tried[-1])
    return {
        "hparams": dict(tuned[best]),
        "trial": best,
        "mean_score": [means[t] for t in order],
        "at_edge": at_edge,
        "all_diverged": all(math.isinf(m) for m in means.values()),
    }


def describe_space(space: dict) -> str:
    """'lr 1e-05…1, weight_decay 0.001…1' ('' for nothing tuned)."""
    return ", ".join(f"{k} {lo:.3g}…{hi:.3g}" for k, (lo, hi) in space.items())
