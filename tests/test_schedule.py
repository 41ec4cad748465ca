"""The schedule reaches every registry entry: during a real `harness.train` run each parameter
group's lr is the peak times the schedule's factor (read from `optimizer.param_groups`), and the
update the library makes follows that group lr (an entry whose library read its lr once, at
construction, would ignore the schedule and fail here)."""
import math

import pytest

import optimizers
import tasks
from workflows.engine import pairs
from workflows.engine import schedule
from workflows.engine.harness import RunConfig, train

CANDIDATES = ("quadratic-k1e2", "embeddings-zipf-sparse", "lm-stdlib")


def task_for(name: str) -> str:
    """A cheap task the entry runs on; an entry with a fallback runs where both of its parts get
    parameters (the LM's hidden matrices and the rest), so both parts' groups are checked."""
    spec = optimizers.get(name)
    candidates = ("lm-stdlib",) if spec.fallback and "sparse" not in spec.needs else CANDIDATES
    return next(t for t in candidates if pairs.compatible(tasks.get(t), spec) is None)


def cosine(step, steps, warmup, floor):
    """The profile's default schedule written out again (not through schedule.factor)."""
    if step < warmup:
        return (step + 1) / warmup
    p = (step - warmup) / (steps - 1 - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))


@pytest.mark.parametrize("name", optimizers.names())
def test_every_group_lr_follows_the_schedule_in_a_real_run(name):
    steps, warmup, floor = 20, 4, 0.1
    peaks, seen = [], {}

    def start(info):
        peaks.extend(g["lr"] for g in info.optimizer.param_groups)

    def step(info):
        seen[info.step] = [g["lr"] for g in info.optimizer.param_groups]

    train(RunConfig(task_for(name), name, steps=steps, warmup=warmup, schedule="cosine", lr_floor=floor,
                    eval_every=steps), threads=1, hooks={"start": start, "step": step})
    # warm-up end (factor 1), mid-decay (factor (1 + floor) / 2 at p = 1/2 is step 11.5; 11 and 12
    # straddle it), and the last step (the floor)
    for s in (0, warmup - 1, 11, 12, steps - 1):
        expected = [peak * cosine(s, steps, warmup, floor) for peak in peaks]
        assert seen[s] == pytest.approx(expected, rel=1e-12), (name, s)
    assert seen[warmup - 1] == pytest.approx(peaks) and seen[steps - 1] == pytest.approx([floor * p for p in peaks])


# D-Adaptation folds d·lr into its momentum buffer (exp_avg += d·lr·(1-β1)·g), so a step's update
# mixes the lrs of earlier steps with the current one: it follows the group lr, but not in proportion.
LR_IN_MOMENTUM = {"dadapt-adam"}


def second_update(name, task, schedule_name):
    """The parameter change of the second step of a two-step float64 run: with the cosine floor of
    0.5 the first step runs at the peak and the second at half of it; with 'constant' at the peak
    both times. The state after the first step is the same in both runs."""
    after = []

    def step(info):
        after.append([p.detach().clone() for p in info.model.parameters()])

    train(RunConfig(task, name, steps=2, schedule=schedule_name, lr_floor=0.5, eval_every=2, dtype="float64"),
          threads=1, hooks={"step": step})
    return [b - a for a, b in zip(*after)]


def norm(ts):
    return math.sqrt(sum(float((t * t).sum()) for t in ts))


@pytest.mark.parametrize("name", optimizers.names())
def test_the_update_follows_the_group_lr(name):
    task = task_for(name)
    full, half = second_update(name, task, "constant"), second_update(name, task, "cosine")
    assert norm(full) > 0, name
    if name in LR_IN_MOMENTUM:
        # it moved less, and not by the same step (a library ignoring the group lr: ratio 1)
        assert norm(half) < 0.9 * norm(full), name
        return
    # lr multiplies the update: half the group lr, half the step. In float64 the gap is rounding
    # (1e-12); 8-bit Adam computes from dequantised float32 state and SOAP eigendecomposes in
    # float32 (up to 5e-4 measured); an ignored group lr gives 1.
    gap = norm([h - 0.5 * f for h, f in zip(half, full)]) / norm([0.5 * f for f in full])
    assert gap < 1e-2, (name, gap)


def test_an_entry_that_brings_its_own_schedule_runs_at_constant_lr():
    profile = {"name": "cosine", "warmup": 0.05, "floor": 0.1}
    assert schedule.run_options(profile, 200, optimizers.get("schedulefree-adamw").takes_schedule) == {
        "schedule": "constant", "warmup": 0, "lr_floor": 0.0, "decay": 0.2}
    assert schedule.run_options(profile, 200, optimizers.get("adamw").takes_schedule) == {
        "schedule": "cosine", "warmup": 10, "lr_floor": 0.1, "decay": 0.2}


def test_a_task_that_fixes_its_schedule_overrides_the_profiles():
    """The schedule ablation (cnn-digits-constant-lr) runs at constant lr under a cosine profile;
    its base task follows the profile."""
    from workflows.engine.measurements import final
    profile = {"name": "cosine", "warmup": 0.1, "floor": 0.1}
    ablation = final.run("cnn-digits-constant-lr", "sgd", "smoke", seed=0, hparams={"lr": 0.05},
                        schedule=profile)
    base = final.run("cnn-digits", "sgd", "smoke", seed=0, hparams={"lr": 0.05}, schedule=profile)
    assert (ablation["config"]["schedule"], ablation["config"]["warmup"]) == ("constant", 0)
    assert (base["config"]["schedule"], base["config"]["lr_floor"]) == ("cosine", 0.1)
    assert base["task"]["data_hash"] == ablation["task"]["data_hash"]   # the same problem
