import dataclasses
import math

import pytest
import torch

import optimizers
import tasks
from workflows.engine import pairs
from workflows.engine import harness
from workflows.engine.harness import RunConfig, train


def test_same_seed_gives_bit_identical_curves():
    cfg = RunConfig("quadratic-k1e2-noisy", "adam", hparams={"lr": 0.05}, steps=40)
    a, b = train(cfg), train(cfg)
    assert a["curves"]["loss"] == b["curves"]["loss"]
    assert a["curves"]["eval"] == b["curves"]["eval"]
    assert a["config_hash"] == b["config_hash"]


def test_different_seeds_give_different_curves():
    a = train(RunConfig("quadratic-k1e2", "sgd", seed=0, steps=5))
    b = train(RunConfig("quadratic-k1e2", "sgd", seed=1, steps=5))
    assert a["curves"]["loss"] != b["curves"]["loss"]
    assert a["task"]["data_hash"] != b["task"]["data_hash"]  # the start point is part of the data


def test_diverging_run_is_recorded_not_raised():
    r = train(RunConfig("quadratic-k1e2", "sgd", hparams={"lr": 50.0}, steps=100))
    assert r["diverged"] and "step" in r["diverge_reason"]
    assert math.isnan(r["final_metric"])
    assert r["steps_done"] < 100


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw"])
def test_state_bytes_equal_memory_model(name):
    r = train(RunConfig("quadratic-k1e2", name, steps=3))
    assert r["state_bytes"]["measured"] == r["state_bytes"]["model"]


def test_record_has_provenance():
    r = train(RunConfig("quadratic-k1e2", "adam", steps=3))
    env = r["environment"]
    for key in ("torch", "device", "device_name", "git_commit", "python", "threads"):
        assert env[key] is not None
    assert r["task"]["data_hash"] and r["task"]["n_params"] == 20
    assert r["optimizer"]["implementation"] == "torch.optim.Adam"


def test_step_timer_excludes_forward_and_backward(monkeypatch):
    """A fake clock that only the loss and the step advance: the step times must be the step's alone."""
    clock = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])
    spec = optimizers.get("sgd")
    real_build = spec.build

    class SlowStep(torch.optim.SGD):
        def step(self, closure=None):
            clock[0] += 1.0
            return super().step(closure)

    object.__setattr__(spec, "build", SlowStep)  # the spec is frozen; restored below
    try:
        task = tasks.get("quadratic-k1e2")

        def slow_build(*a, **k):
            problem = task.build(*a, **k)
            inner = problem.loss

            def loss(model, batch):
                clock[0] += 100.0
                return inner(model, batch)
            problem.loss = loss
            return problem

        monkeypatch.setitem(tasks._REGISTRY, task.name, dataclasses.replace(task, build=slow_build))
        r = train(RunConfig("quadratic-k1e2", "sgd", steps=20))
    finally:
        object.__setattr__(spec, "build", real_build)
    assert r["step_time"]["median"] == 1.0 and r["step_time"]["p90"] == 1.0
    assert r["train_seconds"] == 20 * 101.0


def test_sgd_loss_scale_equals_lr_scale_float64():
    base = dict(hparams={"lr": 0.01}, steps=30, dtype="float64")
    for c in (1e-3, 10.0):
        by_loss = train(RunConfig("quadratic-k1e2", "sgd", loss_scale=c, **base))["curves"]["loss"]
        by_lr = train(RunConfig("quadratic-k1e2", "sgd", lr_scale=c, **base))["curves"]["loss"]
        assert by_loss == pytest.approx(by_lr, rel=1e-12, abs=1e-300)


def test_adam_is_invariant_to_loss_scale_until_eps_float64():
    base = dict(hparams={"lr": 0.01, "eps": 1e-16}, steps=30, dtype="float64")
    ref = train(RunConfig("quadratic-k1e2", "adam", **base))["curves"]["loss"]
    for c in (1e-4, 1e4):
        scaled = train(RunConfig("quadratic-k1e2", "adam", loss_scale=c, **base))["curves"]["loss"]
        assert scaled == pytest.approx(ref, rel=1e-9)
    # With gradients far below eps the update shrinks: the invariance ends where c·|g| nears eps.
    tiny = train(RunConfig("quadratic-k1e2", "adam", loss_scale=1e-20, **base))["curves"]["loss"]
    assert tiny[-1] > ref[-1] * 1.01


def test_clip_by_norm_keeps_direction_and_bounds_norm():
    g = torch.tensor([3.0, 4.0])
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_([p], 1.0)
    assert float(p.grad.norm()) == pytest.approx(1.0)
    assert torch.allclose(p.grad / p.grad.norm(), g / g.norm())


@pytest.mark.parametrize("bad", [dict(task="nope"), dict(optimizer="nope"), dict(size="huge"),
                                 dict(loss_scale=0.0), dict(lr_scale=float("nan")), dict(steps=0),
                                 dict(hparams={"lr": -1.0}), dict(hparams={"betas": (0.9, 1.5)}),
                                 dict(hparams={"eps": 0.0}), dict(hparams={"bogus": 1})])
def test_bad_run_config_is_refused_by_name(bad):
    kw = dict(task="quadratic-k1e2", optimizer="adam") | bad
    with pytest.raises((KeyError, ValueError)) as e:
        RunConfig(**kw)
    value = next(iter(bad.values()))
    named = next(iter(bad)) if not isinstance(value, dict) else next(iter(value))
    assert named in str(e.value) or repr(value) in str(e.value)


def test_lr_schedule_warmup_then_cosine_to_the_floor():
    f = [harness.lr_factor(s, 10, 2, "cosine", 0.1) for s in range(10)]
    assert f[0] == 0.5 and f[1] == 1.0 and f[2] == 1.0
    assert all(a >= b for a, b in zip(f[2:], f[3:]))
    assert f[-1] == pytest.approx(0.1)   # the floor on the last step


def test_lr_schedule_warmup_stable_decay():
    f = [harness.lr_factor(s, 10, 2, "wsd", 0.0, 0.2) for s in range(10)]
    assert f[:8] == [0.5, 1.0, 1, 1, 1, 1, 1, 1]   # warm-up, then stable until the last 20 %
    assert f[8] == pytest.approx(0.5) and f[9] == 0.0


def test_checkpoint_resume_gives_identical_trajectory(tmp_path, monkeypatch):
    cfg = RunConfig("quadratic-k1e2-noisy", "adam", hparams={"lr": 0.05}, steps=30)
    whole = train(cfg)
    ckpt = tmp_path / "run.ckpt"

    class Killed(Exception):
        pass

    real = harness.save_checkpoint
    calls = []

    def save_then_die(path, state):
        real(path, state)
        calls.append(state["step"])
        if state["step"] == 20:
            raise Killed

    monkeypatch.setattr(harness, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(cfg, checkpoint=ckpt, checkpoint_every=10)
    monkeypatch.setattr(harness, "save_checkpoint", real)
    resumed = train(cfg, checkpoint=ckpt, checkpoint_every=10)
    assert calls == [10, 20]
    assert resumed["curves"]["loss"] == whole["curves"]["loss"]
    assert resumed["curves"]["eval"] == whole["curves"]["eval"]
    assert resumed["final_metric"] == whole["final_metric"]


def test_checkpoint_of_another_config_is_ignored(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    train(RunConfig("quadratic-k1e2", "adam", steps=30), checkpoint=ckpt, checkpoint_every=10)
    other = train(RunConfig("quadratic-k1e2", "adam", steps=30, seed=3), checkpoint=ckpt, checkpoint_every=10)
    assert other["curves"]["loss"] == train(RunConfig("quadratic-k1e2", "adam", steps=30, seed=3))["curves"]["loss"]


def test_accumulated_gradient_equals_large_batch_gradient():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    x, y = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)

    def loss_fn(m, batch):
        xb, yb = batch
        return ((m(xb) - yb) ** 2).mean()

    grads = {}
    for k in (1, 4):
        model.zero_grad()
        loss = harness.accumulate_gradients(model, loss_fn, (x, y), k, loss_scale=1.0)
        grads[k] = [p.grad.clone() for p in model.parameters()]
        assert float(loss) == pytest.approx(float(loss_fn(model, (x, y))), rel=1e-12)
    for a, b in zip(grads[1], grads[4]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="accumulate=3"):
        harness.split_batch((x, y), 3)


def test_monitor_records_norms_every_k_steps():
    r = train(RunConfig("quadratic-k1e2", "adam", hparams={"lr": 0.1}, steps=20, monitor_every=5))
    rows = r["monitor"]
    assert [row["step"] for row in rows] == [0, 5, 10, 15]
    first = rows[0]
    # Adam's first step moves every coordinate by lr (bias-corrected m/sqrt(v) = sign(g)).
    assert first["update_norm"] == pytest.approx(0.1 * math.sqrt(20), rel=1e-4)
    assert first["update_to_weight"] == pytest.approx(first["update_norm"] / first["weight_norm"])
    assert first["state_bytes"] == r["state_bytes"]["measured"]
    assert math.isfinite(first["m_abs_mean"]) and math.isfinite(first["v_abs_mean"])
    off = train(RunConfig("quadratic-k1e2", "adam", hparams={"lr": 0.1}, steps=20))
    assert off["monitor"] == [] and off["curves"]["loss"] == r["curves"]["loss"]


def test_activation_checkpointing_keeps_the_trajectory_and_fewer_activations():
    from workflows.engine import flops
    plain = train(RunConfig("lm-stdlib", "adamw", size="smoke", seed=0, steps=3))
    ckpt = train(RunConfig("lm-stdlib", "adamw", size="smoke", seed=0, steps=3, activation_checkpointing=True))
    assert ckpt["curves"]["loss"] == plain["curves"]["loss"]   # recomputation gives the same values
    task = tasks.get("lm-stdlib")
    a, b = task.make("smoke", seed=0), task.make("smoke", seed=0)
    b.activation_checkpointing(b.model)
    assert flops.saved_activation_bytes(b, b.model) < 0.5 * flops.saved_activation_bytes(a, a.model)


def test_activation_checkpointing_is_refused_where_the_task_has_none():
    with pytest.raises(ValueError, match="activation_checkpointing: task 'cnn-digits' does not provide it; tasks that do: lm-stdlib"):
        RunConfig("cnn-digits", "adamw", activation_checkpointing=True)


# --- overflow is divergence -------------------------------------------------------------------------

def test_overflowing_lr_ends_the_run_as_diverged_and_the_record_is_written(tmp_path, capsys):
    """`optbench run ... --lr 1e38` at a constant lr: Adam's first step size lr / (1 - β1) = 1e39
    does not fit in float32, and torch refuses it inside step(); the run ends as diverged, cleanly."""
    from workflows.engine import cli, records
    out = tmp_path / "run.json"
    assert cli.main(["run", "--task", "quadratic-k1e2", "--optimizer", "adam", "--lr", "1e38",
                     "--schedule", "constant", "--warmup", "0", "--out", str(out)]) == 0
    r = records.read(out)
    assert r["diverged"] and r["steps_done"] == 0
    assert r["diverge_reason"].startswith("overflow in optimizer.step() at step 0: RuntimeError")
    assert math.isnan(r["final_metric"]) and r["curves"]["loss"] and r["step_time"]["n"] == 0


@pytest.mark.parametrize("task, optimizer", [
    ("quadratic-k1e2", "adam"),
    ("quadratic-k1e2", "shampoo"),    # used to raise from its SVD of an infinite statistic
    ("cnn-digits", "sophia"),         # used to raise from sampling labels of NaN logits
])
def test_stability_run_with_an_overflowing_scale_is_recorded(task, optimizer, tmp_path):
    from workflows.engine import records
    from workflows.engine.measurements import stability
    record = stability.run(task, optimizer, "smoke", hparams={"lr": 1e-3}, scales=[1e40])
    for row in record["runs"]:
        assert row["diverged"] and row["diverge_reason"], row
    loss_row = next(row for row in record["runs"] if row["axis"] == "loss")
    assert loss_row["diverge_reason"].startswith("non-finite gradient of the loss × 1e+40")
    records.write(record, tmp_path / "stability.json")
    assert records.read(tmp_path / "stability.json")["runs"][0]["diverged"]


def _hook_task(name):
    spec = optimizers.get(name)
    return next(t for t in ("quadratic-k1e2", "cnn-digits", "embeddings-zipf-sparse", "lm-stdlib")
                if pairs.compatible(t, spec) is None)


@pytest.mark.filterwarnings("ignore:Sparse invariant checks:UserWarning")
@pytest.mark.parametrize("name", optimizers.names())
def test_no_optimizer_raises_on_overflow(name):
    """Every entry, at a loss scale and at an lr that overflow float32: a diverged run, not an
    exception, and never past the step where the overflow happened."""
    task = _hook_task(name)
    for kw in (dict(loss_scale=1e40), dict(hparams={"lr": 1e38})):
        r = train(RunConfig(task, name, steps=2, **kw))
        assert r["diverged"] or all(math.isfinite(v) for v in r["curves"]["loss"]), (kw, r["diverge_reason"])
    r = train(RunConfig(task, name, steps=2, loss_scale=1e40))
    assert r["diverged"] and r["steps_done"] == 0, r["diverge_reason"]


def test_overflow_inside_a_step_with_an_overflowed_state_is_divergence():
    """Shampoo in float64 at loss × 1e300: finite gradients, but its statistic G Gᵀ overflows and
    the SVD of it raises; the run ends as diverged, naming the non-finite state."""
    r = train(RunConfig("quadratic-k1e2", "shampoo", steps=3, dtype="float64", loss_scale=1e300))
    assert r["diverged"] and "overflow in optimizer.step() at step 0" in r["diverge_reason"]
    assert "non-finite" in r["diverge_reason"] and "state" in r["diverge_reason"]


def test_an_error_that_is_not_an_overflow_propagates(monkeypatch):
    spec = optimizers.get("sgd")
    real_build = spec.build

    class Broken(torch.optim.SGD):
        def step(self, closure=None):
            raise RuntimeError("a bug in step()")

    object.__setattr__(spec, "build", Broken)  # the spec is frozen; restored below
    try:
        with pytest.raises(RuntimeError, match="a bug"):
            train(RunConfig("quadratic-k1e2", "sgd", steps=2))
    finally:
        object.__setattr__(spec, "build", real_build)


def test_record_header_is_what_every_record_starts_with():
    r = train(RunConfig("quadratic-k1e2", "adam", steps=2))
    header = harness.record_header("run", r["config"], "cpu", r["environment"]["threads"])
    assert list(r)[:len(header)] == list(header) and all(r[k] == v for k, v in header.items())


def test_an_optimizer_with_modes_is_evaluated_at_its_evaluation_point():
    """Schedule-free AdamW takes gradients at y and is evaluated at x (its average): the harness
    switches it with eval()/train() around every evaluation. The record's metric is the one at x;
    evaluating at y, without the switch, gives another."""
    seen = {}

    def last_step(info):
        if info.step == steps - 1:
            seen["y"] = info.problem.evaluate(info.model)["suboptimality"]
            info.optimizer.eval()
            seen["x"] = info.problem.evaluate(info.model)["suboptimality"]
            info.optimizer.train()

    steps = 20
    record = train(RunConfig("quadratic-k1e2", "schedulefree-adamw", steps=steps, eval_every=steps,
                             hparams={"lr": 0.05}), hooks={"step": last_step})
    assert harness.has_modes(optimizers.build_optimizer("schedulefree-adamw", [("w", torch.nn.Parameter(torch.ones(2)))]))
    assert not harness.has_modes(optimizers.build_optimizer("adamw", [("w", torch.nn.Parameter(torch.ones(2)))]))
    # The hook runs after the harness's own switch there and back (y -> x -> y'), so its x is
    # computed from a y' that differs from y by float32 rounding of two lerps: a relative change
    # of order 1e-7 in the weights, far below the 1e-4 allowed here; x and y differ by a step.
    assert record["final_metric"] == pytest.approx(seen["x"], rel=1e-4)
    assert abs(seen["y"] - seen["x"]) > 1e-2 * abs(seen["x"])


def _with_test(monkeypatch, task_name: str, test) -> None:
    """The task, its built problem given `test` as its test split."""
    task = tasks.get(task_name)

    def build(*a, **k):
        problem = task.build(*a, **k)
        problem.test = test
        return problem
    monkeypatch.setitem(tasks._REGISTRY, task.name, dataclasses.replace(task, build=build))


def test_a_final_record_carries_the_test_split_and_reports_it(monkeypatch):
    """The final run evaluates the test split once, after its last evaluation, at the evaluation
    point, on the trained model; the runs table reports it (final_metric) beside the validation's
    last value (val_metric). A plain `train` (tuning's) evaluates nothing of it. The test changes no
    number of the run: curves and validation metric are those of a run without it."""
    from workflows.engine.measurements import final
    calls = []

    def test(model):
        calls.append((model.training, [p.detach().clone() for p in model.parameters()]))
        return {"suboptimality": 42.0, "n_test": 7, "se": 0.5, "extra": 1.0}
    _with_test(monkeypatch, "quadratic-k1e2", test)
    record = final.run("quadratic-k1e2", "adam", "smoke", seed=0, hparams={"lr": 0.05})
    assert len(calls) == 1 and calls[0][0] is False          # once, in eval mode
    plain = train(RunConfig(**{k: record["config"][k] for k in ("task", "optimizer", "size", "seed", "hparams",
                                                                  "schedule", "warmup", "lr_floor", "decay")}))
    trained = tasks.get("quadratic-k1e2").make("smoke", seed=0)   # the test's model is the trained one:
    with torch.no_grad():                                          # the validation's last value is its
        trained.model.x.copy_(calls[0][1][0])
    assert trained.evaluate(trained.model)["suboptimality"] == record["final_metric"]
    assert (record["curves"]["loss"], record["curves"]["eval"]) == (plain["curves"]["loss"], plain["curves"]["eval"])
    assert record["final_metric"] == plain["final_metric"]
    assert (record["metric_split"], record["test_metric"], record["test_n"], record["test_se"]) == ("test", 42.0, 7, 0.5)
    assert record["test_values"]["extra"] == 1.0
    assert (plain["metric_split"], plain["test_metric"], plain["test_n"]) == ("test", None, None)
    row = final.run_row(record)
    assert (row["final_metric"], row["val_metric"], row["metric_split"]) == (42.0, plain["final_metric"], "test")
    assert (row["test_n"], row["test_se"]) == (7, 0.5)
    with pytest.raises(ValueError, match="did not evaluate it"):   # a final row without its test
        final.run_row(plain)


def test_a_task_without_a_test_split_reports_its_objective():
    from workflows.engine.measurements import final
    record = final.run("quadratic-k1e2", "adam", "smoke", seed=0, hparams={"lr": 0.05})
    assert (record["metric_split"], record["test_metric"], record["test_se"]) == ("objective", None, None)
    row = final.run_row(record)
    assert row["final_metric"] == row["val_metric"] == record["final_metric"] and row["metric_split"] == "objective"


def test_a_diverged_final_run_reports_nan_and_evaluates_no_test(monkeypatch):
    _with_test(monkeypatch, "quadratic-k1e2", lambda model: pytest.fail("a diverged run's test was evaluated"))
    r = train(RunConfig("quadratic-k1e2", "sgd", hparams={"lr": 50.0}, steps=100), test=True)
    assert r["diverged"] and math.isnan(r["test_metric"]) and r["test_n"] is None


def test_tuning_never_evaluates_the_test_split_nor_selects_on_it(monkeypatch):
    """Every tuning run leaves the test split unevaluated (a test split that fails the run if it is
    evaluated), so no selection can read it; and a sweep's selection is a function of the runs'
    validation metric alone: giving its runs test metrics that rank them backwards changes nothing."""
    from workflows.engine import protocol
    from workflows.engine.measurements import tune
    _with_test(monkeypatch, "quadratic-k1e2", lambda model: pytest.fail("a tuning run evaluated the test split"))
    sweep = tune.run("quadratic-k1e2", "sgd", "smoke", tuning={"trials": 4, "seeds": [100, 101], "steps_fraction": 0.2})
    assert sweep["runs"] and all(r["test_metric"] is None and r["metric_split"] == "test" for r in sweep["runs"])
    backwards = [{**r, "test_metric": -r["final_metric"], "test_values": {"suboptimality": -r["final_metric"]}}
                 for r in sweep["runs"]]
    space = {k: tuple(v) for k, v in sweep["config"]["space"].items()}
    assert protocol.select(backwards, "quadratic-k1e2", space) == protocol.select(sweep["runs"], "quadratic-k1e2", space)
    assert protocol.select(sweep["runs"], "quadratic-k1e2", space) == sweep["selection"]
