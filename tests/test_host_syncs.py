"""One host synchronisation a training step, counted under the simulated accelerator.

A synchronisation is a `synchronize` of the device (logged by the simulated device) or a read of
a tensor's value on the host (`.item()`, `.tolist()`, `float()`, `int()`, `bool()` of a tensor: on
CUDA each waits for the queue to drain), counted where the harness's side of the loop makes it
(the engine and the tasks; not `device.read`, which is the step's synchronisation itself and is
counted as its `synchronize`, and not the optimizers, whose own reads of host tensors, such as
torch's Adam reading its CPU step count, wait for nothing on a GPU). A plain step (no evaluation,
no monitor row) makes exactly one; the tests also check that the fast loop's records are the
checked loop's, diverged runs included."""
import json
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from workflows.engine import device as device_module
from workflows.engine import harness
from workflows.engine.harness import RunConfig, train

REPO = Path(__file__).resolve().parent.parent
COUNTED = tuple(str(REPO / top) for top in ("workflows", "tasks"))
DEVICE_FILE = str(REPO / "workflows" / "engine" / "device.py")
READS = {"__bool__", "item", "tolist", "__float__", "__int__", "__index__", "numpy"}
STEPS = 6


class HostReads(TorchFunctionMode):
    """Logs every host read of a tensor made by the engine's or a task's code into the recorder."""

    def __init__(self, recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", None) in READS:
            where = sys._getframe(1).f_code.co_filename
            if where.startswith(COUNTED) and where != DEVICE_FILE:
                self.recorder.calls.append(("host_read", where, func.__name__))
        return func(*args, **(kwargs or {}))


def syncs_per_step(cfg: RunConfig) -> list[int]:
    """The synchronisations of each step but the last (whose window holds the final evaluation):
    those between one "step" hook and the next, step 0's from the "start" hook."""
    with device_module.simulated() as recorder:
        mark = lambda info: recorder.calls.append(("mark", None))
        with HostReads(recorder):
            train(cfg, hooks={"start": mark, "step": mark})
    counts, n = [], None
    for what, *_ in recorder.calls:
        if what == "mark":
            if n is not None:
                counts.append(n)
            n = 0
        elif n is not None and what in ("synchronize", "host_read"):
            n += 1
    return counts[:-1]


@pytest.mark.parametrize("cfg", [
    RunConfig("lm-stdlib", "adamw", steps=STEPS, device="cuda", eval_every=100),
    RunConfig("cnn-digits-bn", "sgd", steps=STEPS, device="cuda", eval_every=100, accumulate=2, clip_norm=1.0),
    RunConfig("quadratic-k1e2", "momentum", steps=STEPS, device="cuda:1", eval_every=100, clip_value=1.0),
], ids=["lm-adamw", "cnn-bn-accumulate-clip", "quadratic-clip-value"])
def test_a_plain_step_synchronises_once(cfg):
    counts = syncs_per_step(cfg)
    assert len(counts) == STEPS - 1 and counts == [1] * (STEPS - 1), counts


def test_evaluation_monitor_hessian_and_loss_scaled_steps_may_read_more():
    """What the one-synchronisation rule leaves out, by design: a step that ends in an evaluation
    (its metrics, and the snapshot's read of the step times) or a monitor row (its norms), a step
    of Sophia's Hessian estimate (the task's Hessian loss refuses non-finite logits) and a step
    under a loss scaler (which decides on the host, before the step, whether to take it)."""
    counts = syncs_per_step(RunConfig("lm-stdlib", "adamw", steps=STEPS, device="cuda", eval_every=2,
                                      monitor_every=3))   # monitored: steps 0 and 3; evaluated after 1, 3
    assert [counts[2], counts[4]] == [1, 1] and min(counts[0], counts[1], counts[3]) > 1, counts
    counts = syncs_per_step(RunConfig("lm-stdlib", "sophia", steps=STEPS, device="cuda", eval_every=100))
    hessian_every = harness.optimizers.get("sophia").hessian_every
    assert [c > 1 for c in counts] == [i % hessian_every == 0 for i in range(STEPS - 1)], counts
    counts = syncs_per_step(RunConfig("lm-stdlib", "adamw", steps=STEPS, device="cuda", eval_every=100,
                                      precision="bf16", loss_scaling="dynamic"))
    assert min(counts) > 1, counts


def numbers(record: dict) -> str:
    r = {k: v for k, v in record.items() if k not in ("environment", "train_seconds", "seconds_to_target")}
    r["curves"] = {k: v for k, v in r["curves"].items() if k != "time"}
    r["step_time"] = r["step_time"]["n"]
    return json.dumps(r, sort_keys=True, default=repr)


@pytest.mark.parametrize("cfg", [
    RunConfig("quadratic-k1e2", "sgd", steps=40, eval_every=2, hparams={"lr": 4.0}),   # bound at step 6
    RunConfig("quadratic-k1e2", "sgd", steps=12, loss_scale=1e36),            # non-finite loss
    RunConfig("quadratic-k1e2", "adam", steps=12, hparams={"lr": 1e38}),      # overflow inside the step
    RunConfig("quadratic-k1e2", "sgd", steps=12, hparams={"lr": 1e30}, clip_value=1.0),
    RunConfig("cnn-digits-bn", "sgd", steps=6, hparams={"lr": 1e4}, accumulate=2),
    RunConfig("lm-stdlib", "sophia", steps=6, hparams={"lr": 1e3}),
    RunConfig("lm-stdlib-qk", "muonclip", steps=6, monitor_every=2),
    RunConfig("lm-stdlib", "schedulefree-adamw", steps=6, eval_every=2),
], ids=["bound-late", "loss-inf", "step-overflow", "grad-inf-clipped", "cnn-bn-accumulate", "sophia",
        "muonclip", "schedulefree"])
def test_the_fast_loop_gives_the_checked_loops_record(cfg, monkeypatch):
    """With `_fast_update` failing every step, the run goes back to its first snapshot and runs
    checked throughout: the record the harness gave before the fast loop existed. The two must
    agree to the bit (same process, same arithmetic: the checks only read)."""
    fast = train(cfg)
    monkeypatch.setattr(harness, "_fast_update", lambda *a: False)
    checked = train(cfg)
    assert numbers(fast) == numbers(checked)
    if cfg.steps == 40:
        assert fast["diverged"] and fast["steps_done"] > 2 * cfg.eval_every   # the replay starts after a snapshot
