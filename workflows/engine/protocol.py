"""The tuning protocol: a coordinate-wise grid on one lattice, the same for every optimizer on a
task, each trial on every tuning seed, selection on the mean score over the seeds, and for every
tuned hyperparameter whether the selection is at an edge of what was tried and why.

The search space of an entry is its ``lr_range`` times its ``search`` ranges (``OptimizerSpec``:
weight decay for the entries whose decay is decoupled, lr alone for the rest), and on a task that
tunes β2 (``Task.tunes_beta2``: the LM) ``beta2`` for the entries whose update keeps Adam's second
moment (``OptimizerSpec.tunes_beta2``), in the order lr, weight_decay, beta2; a profile may replace
an entry's ranges (``tuning: {search: {adamw: {lr: [1e-4, 1e-1]}}}``). A range no longer bounds the
search: it gives the centre the grid starts from; the bounds are the hard limits (HARD_LIMITS), the
same for every entry.

Each hyperparameter's lattice is on log10 of a coordinate (COORDINATES): the value itself for lr and
weight decay, 1 − β2 for beta2 (the EMA's memory is 1/(1 − β2) steps: 0.9, 0.99, 0.999 are a decade
apart in it, as lrs are in lr). A point is a tuple of exact exponents of those coordinates; the
values a trial runs at, the records and the tables hold the hyperparameters themselves (β2, not
1 − β2).

The protocol (Wen et al. 2025, "Fantastic pretraining optimizers and where to find them": one
hyperparameter swept at a time around the current best, the grid widened where the best is at
its edge), every tuned entry getting exactly ``tuning.trials`` trials, in this order:

1. ``lr``: 5 points half a decade apart (factor 10**0.5) centred on the geometric centre of the
   entry's lr range rounded to the half-decade lattice 10**(k/2), every other hyperparameter at its
   own centre. Every entry's points lie on the one lattice, so two entries' lrs are comparable and
   no lr is coarser than half a decade around the optimum (the Sobol design this replaces left
   gaps of 7-11x and tied each lr to one weight decay).
2. ``lr-extension``: while the best lr (mean score over the seeds, scores within TIE = 0.1 % of the best tie, the earlier trial wins) is the
   smallest or largest tried and the next lattice point beyond it is inside the hard limits, that
   point is tried. The rule is the entry's no more than another's: a range that happened to be
   declared too narrow costs trials, never the optimum.
3. ``weight_decay`` (where the entry tunes it on the task): 3 points a decade apart centred on the
   geometric centre of its range (rounded to the decade lattice 10**k), at the best lr; then
   ``weight_decay-extension`` by decades, as in 2. Then ``beta2`` (where tuned) the same way at the
   best lr and selected decay: 1 − β2 at 0.1, 0.01, 0.001 (β2 0.9, 0.99, 0.999), then
   ``beta2-extension`` by decades of 1 − β2. Each of these stages' centre is the point the stage
   before selected, run already: it costs 2 new trials.
4. ``lr-again``: the two half-decade neighbours of the best lr at the selected weight decay and β2
   (lr and weight decay interact through their product, Loshchilov & Hutter 2019; β2 sets the memory
   of the update's normaliser, and with it the largest stable lr), extended as in 2.
5. ``refine``: with the trials left, quarter-decade points around the current best lr, below
   first, then above, then eighth-decade ones, each level halving the step, until the trials are
   spent.

A point already run is never run twice: a stage that proposes one takes its score and goes on.
Self-tuning entries (Prodigy, D-Adaptation) run one trial at their defaults, and a task with a
fixed lr (reproducing a published setting) one trial at that lr: neither is tuned. The budget is
checked before any job (`check_trials`, `min_trials`): the lr stage's 5, 2 new points for each
further hyperparameter, 2 lr again and 1 spare for an extension: 5 with lr alone, 5 + 2 + 2 + 1 =
10 with weight decay, 5 + 2 + 2 + 2 + 1 = 12 with weight decay and β2. Within a budget a long
extension may still cut a later stage: the selection says where (`stopped_in`).

Why an edge matters (Choi et al. 2019, "On empirical comparisons of optimizers for deep
learning"): a comparison's outcome follows the search space; with an adequate one the inclusion
relations hold (AdamW, which contains Adam, tunes to no worse than Adam), and a selection at an
edge of what was tried means the space, not the optimizer, chose. `at_edge[h]`: the selected value
of h is the smallest or largest tried along the final coordinate (among the trials that share the
selection's other values; where lr moved after the weight-decay stage, that line holds one decay,
and the values tried anywhere are compared instead); `edge_reason[h]`: "" (interior), "budget"
(the extension ran out of trials) or "hard limit" (the next point beyond is outside HARD_LIMITS).

The trials are adaptive (each depends on the scores before it), so they are not exchangeable
draws and no expected-best-of-k curve applies; the report draws the best so far against the trial
index. `next_trial` is the protocol as a pure function of the trials run so far, and
`workflows.engine.measurements.tune.run` drives it. An entry's weight decay leaves its search space
on a task where the decay policy reaches no parameter (the convex problems' single vector, under
the default "matrices" policy): a setting with no effect would spend trials on noise.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

import optimizers
import tasks

_DENOMINATOR = 2 ** 20   # the finest lattice a refinement reaches: 2**-20 decade
_FINEST = Fraction(1, _DENOMINATOR)


@dataclass(frozen=True)
class Coordinate:
    """How the protocol walks one hyperparameter: its lattice is on log10(u), u the value itself or,
    `complement`, 1 − value; `step`: the lattice's spacing in decades of u (a first stage's points and
    its extensions); `limits`: the hard limits of the value."""
    step: Fraction
    limits: tuple[float, float]
    complement: bool = False

    def log(self, value: float) -> float:
        """log10 of u."""
        return math.log10(1.0 - value if self.complement else value)

    def exponent(self, value: float) -> Fraction:
        """log10 of u, exact (every point the protocol makes is u = 10**(k / 2**m))."""
        return Fraction(round(self.log(value) * _DENOMINATOR), _DENOMINATOR)

    def value(self, e: Fraction) -> float:
        u = 10.0 ** (e.numerator / e.denominator)
        return 1.0 - u if self.complement else u

    def span(self, bounds) -> tuple[Fraction, Fraction]:
        """The exponents of a range's ends, smallest first (a complement's order is the values' reversed)."""
        return tuple(sorted(self.exponent(b) for b in bounds))

    def words(self, key: str) -> str:
        """'half-decade lattice', 'decade lattice of 1 − beta2'."""
        return ({Fraction(1, 2): "half-decade", Fraction(1): "decade"}[self.step] + " lattice"
                + (f" of 1 − {key}" if self.complement else ""))

    def shown(self, value: float) -> str:
        """The value with 3 significant digits of u (0.999, not 1, for a β2)."""
        lost = max(0, -math.floor(math.log10(1.0 - value))) if self.complement else 0
        return f"{value:.{3 + lost}g}"


# The hyperparameters the protocol tunes, in the order it tunes them, each's lattice and the bounds of
# every search whatever an entry's range: one choice for every entry, beyond the ranges the registry
# declares (lr 1e-6…3, weight decay 1e-3…10), so that an extension reaches them only where the
# declared range was off; a selection that stops at one says so (edge_reason "hard limit").
# lr's reaches 1e3: on the convex problems a stopping point at 10 was the optimizer's best (SGD on
# logreg-cancer selects 31.6 with it raised); β2's 0.9999 is a memory of 10^4 steps, beyond every run.
# β2's lower limit is its range's lower end, 0.9: the next decade of 1 − β2 is β2 = 0 (no average at
# all), so a selection of 0.9 is at its hard limit by construction and the report counts it so
COORDINATES = {"lr": Coordinate(Fraction(1, 2), (1e-7, 1e3)),
               "weight_decay": Coordinate(Fraction(1), (1e-6, 10.0)),
               "beta2": Coordinate(Fraction(1), (0.9, 0.9999), complement=True)}
HARD_LIMITS = {k: c.limits for k, c in COORDINATES.items()}
LR_POINTS, OTHER_POINTS, LR_AGAIN, SPARE = 5, 3, 2, 1
STAGES = ("lr", "lr-extension", *(s for k in COORDINATES if k != "lr" for s in (k, f"{k}-extension")),
          "lr-again", "refine")   # in order


def search_space(task: str, optimizer: str, tuning: dict | None = None) -> dict[str, tuple[float, float]]:
    """The tuned hyperparameters of `optimizer` on `task` and their ranges, in COORDINATES' order
    (lr, weight_decay, beta2): the profile's `tuning.search` entry if it names the optimizer, taken
    as given, else the entry's own (beta2 where the task tunes it, weight decay where it reaches a
    parameter); empty where nothing is tuned (a self-tuning entry, a task with a fixed lr)."""
    spec = optimizers.get(optimizer)
    if spec.self_tuning or tasks.get(task).fixed_lr is not None:
        return {}
    given = (tuning or {}).get("search", {}).get(optimizer)
    if given is None:
        space = spec.search_space(beta2=tasks.get(task).tunes_beta2)
        if "weight_decay" in space and not decays_a_parameter(task, optimizer):
            del space["weight_decay"]
        return space
    keys = [k for k in COORDINATES if k in given] + sorted(k for k in given if k not in COORDINATES)
    return {k: (float(given[k][0]), float(given[k][1])) for k in keys}


@functools.lru_cache(maxsize=None)
def decays_a_parameter(task: str, optimizer: str) -> bool:
    """Whether weight decay reaches any parameter of `task` (built at the smoke size: the tensors'
    ranks are the same at every size) under the task's decay policy, else the entry's."""
    from optimizers.routing import decays
    policy = tasks.get(task).decay or optimizers.get(optimizer).decay
    return any(decays(policy, p) for p in tasks.get(task).make("smoke", seed=0).model.parameters())


def min_trials(space) -> int:
    """The trials the stages need in `space` (its keys, or their number): the lr stage's 5 points;
    for each further hyperparameter 3 points, whose centre the stage before ran (the best lr at the
    other centres, then the selected decay), so 2 new; 2 lr again; 1 spare, for an extension. 5
    with lr alone, 10 with weight decay, 12 with weight decay and beta2; 1 where nothing is tuned."""
    dims = space if isinstance(space, int) else len(space)
    if not dims:
        return 1
    return LR_POINTS + (OTHER_POINTS - 1) * (dims - 1) + (LR_AGAIN + SPARE if dims > 1 else 0)


def _centre(key: str, bounds: tuple[float, float]) -> Fraction:
    """The geometric centre of a range in the coordinate of `key`, rounded to its lattice (ties upward)."""
    coordinate = COORDINATES[key]
    step = coordinate.step
    mid = (coordinate.log(bounds[0]) + coordinate.log(bounds[1])) / 2
    return step * math.floor(round(mid / step, 9) + 0.5)


class _Next(Exception):
    """The replay reached a point not yet run: the next trial."""
    def __init__(self, point: tuple, stage: str):
        super().__init__(stage)
        self.point, self.stage = point, stage


class _Replay:
    """The protocol walked again over the trials run so far (`tried`, in order): each point it
    asks for is looked up; the first one missing is the next trial. A stage decides from the
    points the walk has reached (`known`), never from a later trial's score, so the walk over n
    trials makes the decisions it made when only its first ones had run. Points are tuples of
    exact exponents of the coordinates (COORDINATES) in the space's key order."""

    def __init__(self, space: dict, tried):
        self.keys = list(space)
        self.coordinates = [COORDINATES[k] for k in self.keys]
        self.limits = [c.span(c.limits) for c in self.coordinates]
        self.seen: dict[tuple, tuple[float, int]] = {}
        for i, (hparams, score) in enumerate(tried):
            self.seen.setdefault(self.point(hparams), (float(score), i))
        self.known: dict[tuple, tuple[float, int]] = {}

    def point(self, hparams: dict) -> tuple:
        return tuple(c.exponent(hparams[k]) for k, c in zip(self.keys, self.coordinates))

    def hparams(self, point: tuple) -> dict:
        return {k: c.value(e) for k, c, e in zip(self.keys, self.coordinates, point)}

    def inside(self, point) -> bool:
        return all(lo <= e <= hi for e, (lo, hi) in zip(point, self.limits))

    def look(self, point, stage: str) -> None:
        """Reach `point`: known already (a point is never run twice), run (its score becomes
        known), or the next trial (raises _Next)."""
        if point in self.known:
            return
        if point not in self.seen:
            raise _Next(point, stage)
        self.known[point] = self.seen[point]

    def best_on_line(self, at, axis: int):
        """The best point reached that shares `at`'s values off `axis` (`best`: ties to the earlier trial)."""
        line = [p for p in self.known if all(p[j] == at[j] for j in range(len(at)) if j != axis)]
        return best({p: self.known[p] for p in line})

    def extend(self, at, axis: int, stage: str):
        """Stage 2's rule along `axis`: while the line's best is its smallest (largest) value and
        the lattice point below (above) is inside the hard limits, run it. Returns the line's best."""
        step = self.coordinates[axis].step
        while True:
            best = self.best_on_line(at, axis)
            values = [p[axis] for p in self.known if _with(p, axis, best[axis]) == best]
            if best[axis] == min(values):
                beyond = _with(best, axis, best[axis] - step)
            elif best[axis] == max(values):
                beyond = _with(best, axis, best[axis] + step)
            else:
                return best
            if not self.inside(beyond):
                return best
            self.look(beyond, stage)

    def grid(self, at, axis: int, points: int, stage: str) -> None:
        """`points` lattice points along `axis` centred on `at`, smallest coordinate first (inside the limits)."""
        step = self.coordinates[axis].step
        for d in range(-(points // 2), points // 2 + 1):
            point = _with(at, axis, at[axis] + d * step)
            if self.inside(point):
                self.look(point, stage)


def _with(point: tuple, axis: int, e: Fraction) -> tuple:
    return point[:axis] + (e,) + point[axis + 1:]


def _walk(space: dict, replay: _Replay) -> None:
    """The protocol's stages; returns only when no point is left to propose (raises _Next first)."""
    keys = list(space)
    centre = tuple(_centre(k, space[k]) for k in keys)
    replay.grid(centre, 0, LR_POINTS, "lr")
    at = replay.extend(centre, 0, "lr-extension")
    for axis in range(1, len(keys)):
        replay.grid(_with(at, axis, centre[axis]), axis, OTHER_POINTS, keys[axis])
        at = replay.extend(at, axis, f"{keys[axis]}-extension")
    if len(keys) > 1:
        for d in (-1, 1):
            point = _with(at, 0, at[0] + d * COORDINATES["lr"].step)
            if replay.inside(point):
                replay.look(point, "lr-again")
        at = replay.extend(at, 0, "lr-extension")
    step = COORDINATES["lr"].step / 2
    while step >= _FINEST:
        while True:
            best = replay.best_on_line(at, 0)
            left = [p for p in (_with(best, 0, best[0] - step), _with(best, 0, best[0] + step))
                    if replay.inside(p) and p not in replay.known]
            if not left:
                break
            replay.look(left[0], "refine")
        step /= 2


def next_step(space: dict, tried) -> tuple[dict, str] | None:
    """The next trial of the protocol and its stage, from the trials run so far (`tried`: a list
    of (hparams, mean score over the tuning seeds), in the order run; lower is better), with no
    budget: None when the space is empty or no lattice point is left."""
    keys = list(space)
    if not keys:
        return None
    if keys[0] != "lr" or any(k not in COORDINATES for k in keys):
        raise ValueError(f"search space {keys}: the protocol tunes lr first, then any of "
                         f"{', '.join(k for k in COORDINATES if k != 'lr')}; valid keys: {', '.join(COORDINATES)}")
    replay = _Replay(space, tried)
    try:
        _walk(space, replay)
    except _Next as nxt:
        return replay.hparams(nxt.point), nxt.stage
    return None


def check_budget(trials) -> int:
    if not (isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1):
        raise ValueError(f"tuning trials={trials!r}: must be a whole number >= 1")
    return trials


def next_trial(space: dict, tried, budget: int) -> dict | None:
    """The protocol as a pure function: the hparams of the next trial given the trials run so far
    (`tried`: [(hparams, mean score)], lower better, inf for a diverged one), or None once
    `budget` trials are run. Budgets under `min_trials(space)` cut the protocol (the profile check
    refuses them; a direct call runs what fits)."""
    if len(tried) >= check_budget(budget):
        return None
    found = next_step(space, tried)
    return found[0] if found else None


def stopped_in(space: dict, tried) -> str:
    """The stage the budget cut: the stage of the trial that would come next, '' where the protocol
    had reached its refinement (or nothing is tuned)."""
    found = next_step(space, tried)
    return "" if found is None or found[1] == "refine" else found[1]


def untuned_lr(task: str, optimizer: str) -> float | None:
    """The one lr of an entry that is not tuned on `task`: the task's fixed lr, or a self-tuning
    entry's default; None for a tuned pair."""
    fixed = tasks.get(task).fixed_lr
    if fixed is not None:
        return float(fixed)
    spec = optimizers.get(optimizer)
    return float(spec.defaults["lr"]) if spec.self_tuning else None


def is_tuned(task: str, optimizer: str) -> bool:
    """Whether the pair is tuned (neither a self-tuning entry nor a task with a fixed lr): cheap,
    no model built."""
    return untuned_lr(task, optimizer) is None


def proposal(task: str, optimizer: str, tuning: dict, tried) -> tuple[dict, str] | None:
    """The next trial of the pair's sweep and its stage (`next_step` within `tuning.trials`), or
    None when the sweep is done; an untuned pair's one trial is at its lr, stage "fixed-lr" (the
    task fixes it) or "defaults" (a self-tuning entry)."""
    lr = untuned_lr(task, optimizer)
    if lr is not None:
        return None if tried else ({"lr": lr}, "fixed-lr" if tasks.get(task).fixed_lr is not None else "defaults")
    if len(tried) >= check_budget(tuning["trials"]):
        return None
    return next_step(search_space(task, optimizer, tuning), tried)


def runs_per_sweep(task: str, optimizer: str, tuning: dict) -> int:
    """Training runs of one sweep: trials × tuning seeds (what the plan costs); one trial where
    nothing is tuned."""
    trials = check_budget(tuning["trials"]) if is_tuned(task, optimizer) else 1
    return trials * len(tuning["seeds"])


def check_tuning(tuning: dict, optimizer_names) -> None:
    """What the schema (workflows/schemas/config.schema.yaml: the keys, trials, seeds,
    steps_fraction, the shape of `search`) cannot say of a profile's `tuning:` mapping, checked
    before any job runs: each `search` entry names an optimizer the profile runs that is tuned, at
    least one hyperparameter, each a real-valued hyperparameter of the entry with a non-empty log
    range of valid values, lr among them, each one the protocol has a lattice and hard limits for,
    inside those limits (beta2's are of β2: 0.9 … 0.9999). ValueError names the bad value and what
    is valid. `optimizer_names`: the optimizers the profile runs."""
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
            if key not in COORDINATES:
                raise ValueError(f"tuning.search.{name}.{key}: the protocol has no lattice and hard limits for "
                                 f"{key!r}; valid: {', '.join(COORDINATES)}")
            lo, hi = HARD_LIMITS[key]
            if not lo <= bounds[0] < bounds[1] <= hi:
                raise ValueError(f"tuning.search.{name}.{key}={bounds!r}: outside the hard limits; valid: "
                                 f"{lo:g} <= lo < hi <= {hi:g}")
        if "lr" not in space:
            raise ValueError(f"tuning.search.{name}={space!r}: lacks lr, the protocol's first coordinate; "
                             f"valid: a mapping with lr")


def check_trials(tuning: dict, tuned_pairs) -> None:
    """`tuning.trials` is at least what each tuned (task, optimizer) of `tuned_pairs` needs
    (`min_trials`), else ValueError naming the value, the pair and the minimum. The declared
    spaces (beta2 where the task tunes it) bound the need without building a model; only a budget
    under that bound asks the exact space (which builds the task's model to see where weight decay
    acts)."""
    trials = check_budget(tuning["trials"])
    declared = [len((tuning.get("search") or {}).get(o)
                    or optimizers.get(o).search_space(beta2=tasks.get(t).tunes_beta2)) for t, o in tuned_pairs]
    if all(trials >= min_trials(n) for n in declared):
        return
    for task, optimizer in tuned_pairs:
        space = search_space(task, optimizer, tuning)
        need = min_trials(space)
        if trials < need:
            others = list(space)[1:]
            stages = f"{LR_POINTS} lr" + "".join(f" + {OTHER_POINTS - 1} {k}" for k in others) + (
                f" + {LR_AGAIN} lr again + {SPARE} spare for an extension: each of {', '.join(others)} has "
                f"{OTHER_POINTS} points, its centre run by the stage before" if others else "")
            raise ValueError(f"tuning.trials={trials}: {optimizer} on {task} tunes {', '.join(space)}, whose "
                             f"protocol needs at least {need} trials ({stages}); valid: >= {need}")


def check_studies(config: dict) -> None:
    """The tuning studies' pairs (`tuning.horizon_check`: {task: [optimizers]}, `tuning.repeats`:
    tasks × optimizers) are pairs the profile tunes, each named with the valid ones where not;
    the repeats' seeds are disjoint from the final seeds; the horizon check needs a profile that
    tunes at less than the full horizon; and `tuning.trials` covers every tuned pair."""
    from workflows.engine.measurements.tune import swept   # the pairs with a sweep of their own
    tuning = config["tuning"]
    tuned = {t: [o for _, o in swept(config, [t]) if is_tuned(t, o)] for t in config["tasks"]}
    check_trials(tuning, [(t, o) for t, names in tuned.items() for o in names])

    def known(key: str, task: str, names, names_key: str) -> None:
        valid = [t for t in config["tasks"] if tuned[t]]
        if task not in tuned or not tuned[task]:
            raise ValueError(f"{key}: task {task!r} is not a task the profile tunes; valid: {', '.join(valid)}")
        bad = [o for o in names if o not in tuned[task]]
        if bad:
            raise ValueError(f"{names_key}: {', '.join(map(repr, bad))} not tuned by the profile on {task}; "
                             f"valid: {', '.join(tuned[task])}")

    horizon = tuning.get("horizon_check", {})
    for task, names in horizon.items():
        known("tuning.horizon_check", task, names, f"tuning.horizon_check.{task}")
    if horizon and tuning.get("steps_fraction", 1.0) >= 1.0:
        raise ValueError("tuning.horizon_check: the profile tunes at the full horizon already (steps_fraction "
                         "1.0): nothing to compare; valid: {} or a steps_fraction below 1")
    repeats = tuning.get("repeats", {})
    for task in repeats.get("tasks", []):
        known("tuning.repeats.tasks", task, repeats.get("optimizers", tuned.get(task, [])), "tuning.repeats.optimizers")
    seeds = [s for group in repeats.get("seeds", []) for s in group] if repeats.get("tasks") else []
    overlap = sorted(set(seeds) & set(config["final_seeds"]))
    if overlap:
        raise ValueError(f"tuning.repeats.seeds share {overlap} with final_seeds; valid: seeds disjoint from "
                         f"{config['final_seeds']}")


def score(run: dict, direction: str) -> float:
    """A run's tuning score, lower is better; diverged or non-finite runs score +inf."""
    v = run["final_metric"]
    if run["diverged"] or not math.isfinite(v):
        return math.inf
    return v if direction == "min" else -v


def _edges(tuned: dict, order: list, best: int) -> tuple[dict, dict]:
    """at_edge and edge_reason of the selection `best` (see the module's docstring)."""
    at_edge, reason = {}, {}
    chosen = tuned[best]
    for key, value in chosen.items():
        coordinate = COORDINATES[key]
        line = [t for t in order if all(tuned[t].get(k) == v for k, v in chosen.items() if k != key)]
        tried = sorted({coordinate.exponent(tuned[t][key]) for t in line})
        if len(tried) < 2:
            tried = sorted({coordinate.exponent(tuned[t][key]) for t in order})
        e = coordinate.exponent(value)
        at_edge[key] = len(tried) > 1 and e in (tried[0], tried[-1])
        reason[key] = ""
        if at_edge[key]:
            beyond = e + coordinate.step * (1 if e == tried[-1] else -1)
            lo, hi = coordinate.span(coordinate.limits)
            reason[key] = "budget" if lo <= beyond <= hi else "hard limit"
    return at_edge, reason


# Scores closer than this share of the best one's size are a tie, which the earlier trial wins (in the
# lr stage, run smallest first, the smaller lr: the conservative choice; in a later coordinate's stage,
# its centre, run before its neighbours): one
# tuning seed does not resolve them (the repeated tuning study's spread of the CNN's selected score
# is ~1.4 pp, ~15x this), and without it a coordinate that changes nothing walks its extension to
# the hard limit on noise (weight decay on lm-stdlib at 20 smoke steps: 1e-4 apart on a loss of
# 5.5, decay 1e-3 to 1e-6 tried one after another), spending the trials a later coordinate needs.
# A tenth of a percent is below one CNN test image (0.33 pp of ~95 %) and the LM's test standard
# error; a relative rule holds for every metric's scale (suboptimality down to 1e-12, a loss of 1.4).
TIE = 1e-3


def best(scored: dict):
    """The key of `scored` ({key: (score, trial index)}, lower better) with the best score, where
    every score within TIE × |best score| of it ties and the earliest trial among them wins."""
    low = min(v[0] for v in scored.values())
    if math.isinf(low):
        return min(scored, key=lambda k: scored[k][1])
    tied = [k for k, (v, _) in scored.items() if v <= low + TIE * abs(low)]
    return min(tied, key=lambda k: scored[k][1])


def select(runs: list[dict], task: str, space: dict | None = None) -> dict:
    """The trial whose mean score over the tuning seeds is best (ties within TIE: the earlier trial). `runs`
    are the sweep's runs, each with its `trial` index and `tuned` hparams. `at_edge[h]` and
    `edge_reason[h]` as the module's docstring says; with the sweep's `space`, `stopped_in`: the
    stage the budget cut ('' where the protocol reached its refinement)."""
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
    chosen = best({t: (means[t], t) for t in order})
    at_edge, reason = _edges(tuned, order, chosen)
    out = {
        "hparams": dict(tuned[chosen]),
        "trial": chosen,
        "mean_score": [means[t] for t in order],
        "at_edge": at_edge,
        "edge_reason": reason,
        "all_diverged": all(math.isinf(m) for m in means.values()),
    }
    if space is not None:
        out["stopped_in"] = stopped_in(space, [(tuned[t], means[t]) for t in order])
    return out


def describe_space(space: dict) -> str:
    """'lr half-decade lattice from 0.00316 (range 1e-05…1), weight_decay decade lattice from 0.1
    (range 0.001…1), beta2 decade lattice of 1 − beta2 from 0.99 (range 0.9…0.999)' ('' for nothing
    tuned): where each stage starts, on which lattice."""
    def words(key, c, bounds):
        return (f"{key} {c.words(key)} from {c.shown(c.value(_centre(key, bounds)))} "
                f"(range {c.shown(bounds[0])}…{c.shown(bounds[1])})")
    return ", ".join(words(k, COORDINATES[k], bounds) for k, bounds in space.items())


def describe_limits(space: dict) -> str:
    """'lr 1e-07…1000, weight_decay 1e-06…10, beta2 0.9…0.9999': the hard limits of the space's
    hyperparameters."""
    return ", ".join(f"{k} {HARD_LIMITS[k][0]:g}…{HARD_LIMITS[k][1]:g}" for k in space)
