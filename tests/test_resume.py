"""Resume is exact for every optimizer in the registry: a run killed right after a checkpoint and
started again gives the uninterrupted run's record (losses, evaluations, monitor rows, final
metric, state bytes, everything but wall-clock times). Same machine, same process: bit-equality
is the right test here.

Each optimizer runs on the first of these tasks it can run (`workflows.engine.pairs.compatible`), chosen so that
its hooks and its kinds of parameters are exercised: the GAN has 2-D hidden matrices beside
biases and heads (so Muon's and the AdamW fallback's state are both saved); Sophia needs the
Hessian hook (the CNN with BatchNorm, whose running statistics are buffers of the checkpoint,
and whose Hessian samples must come from the step's stream, not from a generator made at build);
SparseAdam needs sparse gradients (the embeddings); MuonClip needs attention logits (the LM).
"""
import json

import pytest

import optimizers
import tasks
from workflows.engine import pairs
from workflows.engine import harness
from workflows.engine.harness import RunConfig, train

TASKS = ("gan-ring8", "cnn-digits-bn", "embeddings-zipf-sparse", "lm-stdlib")
STEPS, EVERY, KILLED_AT = 12, 5, 5   # checkpoints at 5 and 10; Sophia's Hessian at 0 and 10
WALL_CLOCK = ("train_seconds", "seconds_to_target")

pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")


def task_for(name: str) -> str:
    spec = optimizers.get(name)
    return next(t for t in TASKS if pairs.compatible(t, spec) is None)


class Killed(Exception):
    pass


def kill_after(step: int):
    def hook(info):
        if info.step + 1 == step:   # the "step" hook runs after that step's checkpoint is saved
            raise Killed
    return hook


def without_wall_clock(record: dict) -> dict:
    r = {k: v for k, v in record.items() if k not in WALL_CLOCK}
    r["curves"] = {k: v for k, v in record["curves"].items() if k != "time"}
    r["step_time"] = {"n": record["step_time"]["n"]}
    return r


def same(a, b) -> bool:
    """Bit-equal, NaN included (repr is exact for floats)."""
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True, default=repr)


@pytest.mark.parametrize("name", optimizers.names())
def test_resumed_run_equals_the_uninterrupted_one(name, tmp_path):
    cfg = RunConfig(task_for(name), name, steps=STEPS, eval_every=4, monitor_every=2)
    whole = train(cfg)
    assert not whole["diverged"] or whole["steps_done"] > KILLED_AT, whole["diverge_reason"]

    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(Killed):
        train(cfg, checkpoint=ckpt, checkpoint_every=EVERY, hooks={"step": kill_after(KILLED_AT)})
    starts = []
    resumed = train(cfg, checkpoint=ckpt, checkpoint_every=EVERY,
                    hooks={"start": lambda info: starts.append(info.step)})
    assert starts == [KILLED_AT]                       # it did resume, from the checkpoint

    a, b = without_wall_clock(whole), without_wall_clock(resumed)
    assert same(a["curves"]["loss"], b["curves"]["loss"])
    assert same(a["curves"]["eval"], b["curves"]["eval"])
    assert same(a["monitor"], b["monitor"])
    assert {row["step"] for row in b["monitor"]} == set(range(0, STEPS, 2))   # before the kill too
    assert same(a["final_metric"], b["final_metric"])
    assert b["step_time"]["n"] == a["step_time"]["n"] > 0   # step times from before the kill are kept
    assert same(a, b)


def test_step_times_survive_a_resume_on_cuda_too():
    """On CUDA the timer holds events until `times()` reads them; what a checkpoint saves and a
    resume restores is the same list of seconds on both devices. (The simulated device: no GPU.)"""
    from workflows.engine import device

    with device.simulated() as recorder:
        timer = device.StepTimer("cuda")
        for _ in range(2):
            with timer:
                pass
        saved = timer.times()                           # what the checkpoint holds
        assert len(saved) == 2 and recorder.count("event_elapsed") == 2

        resumed = device.StepTimer("cuda")
        resumed.seconds = list(saved)                   # what train() restores
        with resumed:
            pass
        times = resumed.times()
        assert times[:2] == saved and len(times) == 3
        with pytest.raises(ValueError):                 # a step that raises is not timed
            with resumed:
                raise ValueError
        assert resumed.times() == times
