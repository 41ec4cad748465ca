"""The CUDA control flow, on the CPU: under `device.simulated()` a CUDA device keeps its tensors on
the CPU and logs every call that would go to `torch.cuda` (events, their stream, synchronisations,
peak-memory resets and reads, RNG saves and restores, configuration). These tests run the harness,
the steptime, loop_options and precision measurements and the plan's calibration through it and
assert where the calls fall. No number here is a GPU number."""
import json

import pytest
import torch

from workflows.engine import device as device_module
from workflows.engine import harness, plan
from workflows.engine.device import Simulated, StepTimer
from workflows.engine.harness import RunConfig, train
from workflows.engine.measurements import loop_options, precision, steptime

STEPS = 6


@pytest.fixture
def sim(monkeypatch):
    """A recorder, with the wall clock and gc.collect logged too."""
    with device_module.simulated() as recorder:
        wall_clock = device_module.Cuda.wall_clock
        collect = device_module.gc.collect

        def logged_wall_clock(self):
            t = wall_clock(self)       # the synchronisation, then the clock
            self._log("wall_clock")
            return t
        monkeypatch.setattr(Simulated, "wall_clock", logged_wall_clock)
        monkeypatch.setattr(device_module.gc, "collect", lambda *a: (recorder.calls.append(("gc_collect", None)),
                                                                    collect(*a))[1])
        yield recorder


def mark_steps(recorder):
    """A "start" hook that logs optimizer.step()'s beginning and end."""
    def hook(info):
        info.optimizer.register_step_pre_hook(lambda *a: recorder.calls.append(("step_begin", None)))
        info.optimizer.register_step_post_hook(lambda *a: recorder.calls.append(("step_end", None)))
    return {"start": hook}


def numbers(record: dict) -> str:
    r = {k: v for k, v in record.items() if k not in ("environment", "train_seconds", "seconds_to_target",
                                                        "peak_memory_bytes", "config", "config_hash")}
    r["curves"] = {k: v for k, v in r["curves"].items() if k != "time"}
    r["step_time"] = r["step_time"]["n"]
    return json.dumps(r, sort_keys=True, default=repr)


def test_the_event_pair_brackets_only_the_step_on_the_run_devices_stream(sim):
    train(RunConfig("lm-stdlib", "adamw", steps=STEPS, device="cuda:1"), hooks=mark_steps(sim))
    names = sim.names()
    begins = [i for i, n in enumerate(names) if n == "step_begin"]
    assert len(begins) == STEPS and sim.count("event_create") == 2 * STEPS
    for i in begins:
        assert names[i - 1] == "event_record" and names[i + 1] == "step_end" and names[i + 2] == "event_record"
    assert {c[1] for c in sim.calls if c[0] == "event_record"} == {"cuda:1"}
    assert {c[1] for c in sim.calls if c[0] in ("synchronize", "peak_reset", "peak_read")} == {"cuda:1"}


def test_one_synchronize_a_step_after_the_step_then_the_wall_clock(sim, monkeypatch):
    """The step's one synchronisation is the read of its checks (`device.read`), after
    optimizer.step() and before the next step; the wall clock is read after it (tests/test_host_syncs.py
    counts every host read too)."""
    clock = []
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock.append(len(sim.calls)) or float(len(clock)))
    train(RunConfig("cnn-digits-bn", "sgd", steps=STEPS, device="cuda", eval_every=100), hooks=mark_steps(sim))
    names = sim.names()
    ends = [i for i, n in enumerate(names) if n == "step_end"] + [len(names)]
    for a, b in zip(ends, ends[1:]):
        assert [n for n in names[a:b] if n == "synchronize"][:1] == ["synchronize"]
        sync = a + names[a:b].index("synchronize")
        # the step's clock read right after the synchronisation, and (but for the last step) the next
        # step's start, with no device call between: a `now` read before the sync would leave one
        reads = sum(c == sync + 1 for c in clock)
        assert reads >= (2 if b < len(names) else 1), (sync, reads)
    syncs = [i for i, n in enumerate(names) if n == "synchronize"]
    assert len(syncs) == STEPS + 1    # a step's, and the one read of the step times for the record


def test_peak_memory_reset_after_a_collection_before_step_zero_and_read_for_the_record(sim):
    r = train(RunConfig("lm-stdlib", "adamw", steps=STEPS, device="cuda"), hooks=mark_steps(sim))
    names = sim.names()
    reset = names.index("peak_reset")
    assert names[reset - 1] == "gc_collect" and reset < names.index("step_begin")
    assert sim.count("peak_reset") == 1 and sim.count("peak_read") == 1
    assert r["peak_memory_bytes"] is None        # the simulated device reports no GPU number


def count_snapshots(monkeypatch) -> list:
    """The steps of the harness's in-memory snapshots (each saves the RNG states, as a checkpoint does)."""
    steps, snapshot = [], harness._snapshot
    monkeypatch.setattr(harness, "_snapshot", lambda run, state, step: steps.append(step) or snapshot(run, state, step))
    return steps


def test_rng_saved_and_restored_on_checkpoint(sim, tmp_path, monkeypatch):
    snapshots = count_snapshots(monkeypatch)

    class Killed(Exception):
        pass

    def kill(info):
        if info.step + 1 == 4:
            raise Killed
    cfg = RunConfig("cnn-digits-bn", "sophia", steps=STEPS, device="cuda")
    with pytest.raises(Killed):
        train(cfg, checkpoint=tmp_path / "c.pt", checkpoint_every=2, hooks={"step": kill})
    assert sim.count("rng_save") == 2 + len(snapshots) and sim.count("rng_restore") == 0  # checkpoints at 2, 4
    sim.calls.clear()
    resumed = train(cfg, checkpoint=tmp_path / "c.pt", checkpoint_every=2)
    assert sim.count("rng_restore") == 1 and resumed["steps_done"] == STEPS


def test_rng_saved_and_restored_around_every_precision_probe(sim):
    train(RunConfig("lm-stdlib", "adamw", steps=STEPS, device="cuda", precision="fp16", loss_scaling="dynamic",
                    probe_every=2))
    assert sim.count("rng_save") == sim.count("rng_restore") == STEPS // 2


def test_simulated_run_has_the_cpu_runs_numbers_and_says_it_is_simulated(sim):
    cfg = dict(task="lm-stdlib", optimizer="adamw", steps=STEPS, precision="bf16")
    simulated = train(RunConfig(**cfg, device="cuda"))
    plain = train(RunConfig(**cfg))
    assert numbers(simulated) == numbers(plain)
    env = simulated["environment"]
    assert env["simulated"] is True and env["device"] == "cuda" and env["device_name"] == "simulated"
    assert (env["fp32_precision"], env["deterministic"]) == ("ieee", True)


def test_configure_asks_for_ieee_and_determinism_by_default_and_tf32_when_told(sim):
    train(RunConfig("lm-stdlib", "adamw", steps=2, device="cuda"))
    train(RunConfig("lm-stdlib", "adamw", steps=2, device="cuda", fp32_precision="tf32", deterministic=False))
    assert [c[2:] for c in sim.calls if c[0] == "configure"] == [("ieee", True), ("tf32", False)]


def test_a_cpu_run_leaves_torchs_precision_and_determinism_flags_alone():
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
              torch.are_deterministic_algorithms_enabled())
    r = train(RunConfig("lm-stdlib", "adamw", steps=2, fp32_precision="tf32"))
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
            torch.are_deterministic_algorithms_enabled()) == before
    assert r["environment"]["fp32_precision"] == "tf32" and r["config"]["fp32_precision"] == "tf32"


def test_device_settings_at_their_defaults_keep_the_config_hash():
    base = RunConfig("lm-stdlib", "adamw")
    assert "fp32_precision" not in base.to_dict() and "deterministic" not in base.to_dict()
    assert RunConfig("lm-stdlib", "adamw", fp32_precision="tf32").to_dict() != base.to_dict()
    with pytest.raises(ValueError, match="valid: ieee, tf32"):
        RunConfig("lm-stdlib", "adamw", fp32_precision="fp32")
    with pytest.raises(ValueError, match="valid: true, false"):
        RunConfig("lm-stdlib", "adamw", deterministic="yes")


def test_step_timer_records_on_the_stream_of_its_device(sim):
    timer = StepTimer("cuda:1")
    for _ in range(3):
        with timer:
            pass
    assert sim.count("synchronize") == 0 and len(timer.pairs) == 3     # nothing waits until read
    assert len(timer.times()) == 3 and sim.count("synchronize") == 1 and sim.count("event_elapsed") == 3
    assert {c[1] for c in sim.calls if c[0] == "event_record"} == {"cuda:1"}


def test_steptime_measurement_times_on_the_runs_device(sim):
    r = steptime.run("logreg-cancer", "sgd", "smoke", steps=3, warmup=1, rounds=2, device="cuda:1")
    assert sim.count("event_create") == 2 * 3 * 2 * 2       # two optimizers, rounds × steps, a pair each
    assert {c[1] for c in sim.calls if c[0] in ("event_record", "synchronize")} == {"cuda:1"}
    assert r["environment"]["simulated"] is True


def test_loop_options_measurement_runs_every_option_through_the_device(sim):
    r = loop_options.run("logreg-cancer", "sgd", "smoke", steps=4, rounds=1, monitor_every=2, device="cuda")
    assert sim.count("peak_reset") == len(r["options"]) and sim.count("configure") == len(r["options"])


def test_precision_measurement_and_calibration_run_under_the_simulated_device(sim, monkeypatch):
    snapshots = count_snapshots(monkeypatch)      # the fp32 runs' (no probe there)
    r = precision.run("lm-stdlib", "adamw", "smoke", {"lr": 1e-3}, seeds=[0], static_scales=[8.0], device="cuda",
                      steps=4, probe_every=2)
    assert r["environment"]["simulated"] is True
    assert sim.count("rng_save") - len(snapshots) == sim.count("rng_restore") > 0
    sim.calls.clear()
    found = plan.calibrate(["logreg-cancer"], "smoke", device="cuda", steps=4)
    assert set(found) == {"logreg-cancer"} and sim.count("peak_reset") == 1


def test_one_read_finds_the_non_finite_tensors_in_order():
    nan, inf = float("nan"), float("inf")
    named = [("a", torch.tensor([1.0, nan])), ("b", torch.ones(2, dtype=torch.float64)), ("c", None),
             ("d", torch.tensor([inf], dtype=torch.float64)), ("e", torch.empty(0)), ("f", torch.arange(3)),
             ("g", torch.tensor([-inf, 1.0])), ("h", torch.tensor([3e38, 3e38]))]
    values, bad = harness._read([torch.tensor(2.5), torch.tensor(nan)], named)
    assert values[0] == 2.5 and values[1] != values[1] and bad == ["a", "d", "g"]




def test_the_environment_variable_simulates_cuda_devices_that_cuda_visible_devices_narrows(monkeypatch):
    """OPTBENCH_SIMULATED_CUDA=2: what a subprocess (a Snakemake job) sees, without the context manager."""
    monkeypatch.setenv(device_module.SIMULATED_VARIABLE, "2")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert device_module.cuda_devices() == 2
    dev = device_module.get("cuda:1")
    assert isinstance(dev, Simulated) and dev.tensors == torch.device("cpu") and str(dev.where) == "cuda:1"
    r = train(RunConfig("quadratic-k1e2", "sgd", steps=3, device="cuda:1"))
    assert r["environment"]["simulated"] is True and r["environment"]["device"] == "cuda"
    # CUDA's rule: the listed indices in order, up to the first that names no device
    for listed, count in [("1", 1), ("1,0", 2), ("1,7,0", 1), ("", 0), ("0,0", 1)]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
        assert device_module.cuda_devices() == count, listed
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert isinstance(device_module.get("cuda"), Simulated)
    with pytest.raises(ValueError, match=r"leaves 1 simulated device\(s\); valid: cpu, cuda, cuda:0$"):
        device_module.get("cuda:1")


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_simulated_device_count_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(device_module.SIMULATED_VARIABLE, value)
    with pytest.raises(ValueError, match=f"OPTBENCH_SIMULATED_CUDA='{value}'; valid: a number of simulated"):
        device_module.cuda_devices()


def test_aggregation_refuses_a_simulated_record_unless_it_simulates_too(sim, tmp_path, monkeypatch):
    """A simulated record holds CPU timings under a CUDA device's name: outside a simulating process
    (a test) it never reaches a table, and the final job's store does not take it either."""
    from workflows.engine import aggregate, records
    from workflows.engine.measurements import final
    monkeypatch.delenv(device_module.SIMULATED_VARIABLE, raising=False)
    r = final.run("quadratic-k1e2", "sgd", "smoke", seed=0, hparams={"lr": 0.1}, device="cuda")
    path = records.record_path(tmp_path, "final", "quadratic-k1e2", "sgd", 0)
    records.write(r, path)
    with pytest.raises(records.RecordError, match="made on the simulated CUDA device"):
        aggregate.check(path, records.read(path), tmp_path, "smoke")
    monkeypatch.setenv(device_module.SIMULATED_VARIABLE, "1")
    assert aggregate.check(path, records.read(path), tmp_path, "smoke")["runs"]
    plain = final.run("quadratic-k1e2", "sgd", "smoke", seed=0, hparams={"lr": 0.1})
    assert device_module.simulated_refusal(plain["environment"]) is None


def test_one_module_names_torch_cuda():
    """Every other module goes through workflows.engine.device (a test may name torch.cuda)."""
    import re
    from pathlib import Path
    repo = Path(__file__).resolve().parent.parent
    found = sorted(str(p.relative_to(repo)) for top in ("optimizers", "tasks", "workflows", "report")
                   for p in (repo / top).rglob("*.py")
                   if re.search(r"torch\.(cuda|accelerator)\b", p.read_text()))
    assert found == ["workflows/engine/device.py"], found
