import math

import pytest

from tasks.runner import config as profile_config, protocol


def run(lr, metric, diverged=False):
    return {"optimizer": {"hparams": {"lr": lr}}, "final_metric": metric, "diverged": diverged}


def test_selects_best_mean_over_seeds_and_flags_edges():
    runs = [run(0.01, 1.0), run(0.01, 3.0), run(0.1, 1.5), run(0.1, 1.6), run(1.0, 0.1, diverged=True), run(1.0, 0.1)]
    sel = protocol.select(runs, "quadratic-k1e2")  # metric: min
    assert sel["lr"] == 0.1 and not sel["at_edge"]
    sel = protocol.select([run(0.01, 2.0), run(0.1, 1.0)], "quadratic-k1e2")
    assert sel["lr"] == 0.1 and sel["at_edge"]


def test_all_diverged_is_flagged():
    sel = protocol.select([run(0.1, math.nan, True), run(1.0, math.nan, True)], "quadratic-k1e2")
    assert sel["all_diverged"]


def test_empty_sweep_is_refused():
    with pytest.raises(ValueError, match="empty tuning sweep"):
        protocol.select([], "quadratic-k1e2")


def test_grid_is_log_spaced_over_the_entry_range():
    g = protocol.lr_grid("adam", 6)
    assert g[0] == pytest.approx(1e-5) and g[-1] == pytest.approx(1.0)
    assert all(b / a == pytest.approx(10) for a, b in zip(g, g[1:]))
    with pytest.raises(ValueError, match="grid_points=0"):
        protocol.lr_grid("adam", 0)


def config(**over):
    """A valid profile config with the schema's defaults filled in, as the Snakefile has it."""
    from pathlib import Path

    from snakemake.utils import validate
    base = dict(profile="t", size="smoke", device="cpu", threads=1, tasks=["quadratic-k1e2"],
                optimizers=["adam"], tuning={"grid_points": 2, "seeds": [100]}, final_seeds=[0],
                stability={"tasks": [], "scales": [1.0]},
                steptime={"tasks": [], "steps": 1, "warmup": 0, "rounds": 1})
    cfg = base | over
    validate(cfg, str(Path(__file__).resolve().parent.parent / "workflows/schemas/config.schema.yaml"),
             set_default=True)
    return cfg


@pytest.mark.parametrize("over, message", [
    (dict(optimizers=["adam", "adamm"]), "unknown 'adamm'; valid: .*adam"),
    (dict(tasks=["quadratc"]), "unknown 'quadratc'; valid: "),
    (dict(final_seeds=[100]), "share \\[100\\]"),
    (dict(stability={"tasks": ["quadratic-k1e4"], "scales": [1.0]}), "stability.tasks: unknown 'quadratic-k1e4'"),
    (dict(loop_options={"tasks": ["quadratic-k1e2"], "optimizer": "sophia"}),
     "loop_options: sophia needs hessian, which task quadratic-k1e2 does not provide"),
])
def test_config_errors_name_the_bad_value(over, message):
    with pytest.raises(profile_config.ConfigError, match=message):
        profile_config.check_config(config(**over))
    profile_config.check_config(config())


def test_refinement_tries_the_log_midpoints_around_the_best():
    assert protocol.refinement([1e-4, 1e-2, 1.0], 1e-2) == pytest.approx([1e-3, 1e-1])
    assert protocol.refinement([1e-4, 1e-2, 1.0], 1.0) == pytest.approx([1e-1])   # at the range's end
    assert protocol.refinement([0.1], 0.1) == []


def test_refined_sweep_converges_on_the_best_lr_with_the_same_budget_for_all(monkeypatch):
    # A score with its minimum at lr = 3e-3: two rounds from a 4-point grid over [1e-5, 1] land
    # within a quarter of the coarse spacing (5/3 decades) of it.
    from tasks.runner import measure

    def fake_train(cfg, threads=1):
        lr = cfg.hparams["lr"]
        return {"optimizer": {"hparams": {"lr": lr}}, "final_metric": abs(math.log10(lr / 3e-3)),
                "diverged": False}
    monkeypatch.setattr(measure, "train", fake_train)
    monkeypatch.setattr(measure, "_compact", lambda r: r)
    monkeypatch.setattr(measure, "record_header", lambda *a: {})
    sweep = measure.tune("quadratic-k1e2", "adam", "smoke", seeds=[100], grid_points=4, refine=2)
    assert len(sweep["runs"]) == 4 + 2 + 2
    assert abs(math.log10(sweep["selection"]["lr"] / 3e-3)) <= (5 / 3) / 4


def test_a_task_with_a_fixed_lr_is_not_tuned():
    assert protocol.initial_grid("toy-quartic", "sgd", 5) == [0.1]
