import math

import pytest

import optimizers
from workflows.engine import config as profile_config, protocol


def run(trial, metric, diverged=False, lr=None, wd=0.1):
    tuned = {"lr": lr if lr is not None else 10.0 ** -trial, "weight_decay": wd}
    return {"trial": trial, "tuned": tuned, "final_metric": metric, "diverged": diverged,
            "config": {"seed": 100}}


def test_selects_the_best_mean_over_seeds_and_flags_each_hparam_at_an_edge():
    # trial 0 has the best single run (1.0) but the worst mean (2.0); trial 1 the best mean (1.55)
    runs = [run(0, 1.0, wd=0.3), run(0, 3.0, wd=0.3), run(1, 1.5, wd=0.01), run(1, 1.6, wd=0.01),
            run(2, 0.1, diverged=True, wd=0.1), run(2, 0.1, wd=0.1)]
    sel = protocol.select(runs, "quadratic-k1e2")  # metric: min
    assert sel["trial"] == 1 and sel["hparams"] == {"lr": 0.1, "weight_decay": 0.01}
    assert sel["at_edge"] == {"lr": False, "weight_decay": True}   # 0.01 is the smallest decay tried
    assert sel["mean_score"][2] == math.inf                         # one diverged seed sinks a trial


def test_ties_go_to_the_earlier_trial_and_all_diverged_is_flagged():
    assert protocol.select([run(0, 1.0), run(1, 1.0)], "quadratic-k1e2")["trial"] == 0
    sel = protocol.select([run(0, math.nan, True), run(1, math.nan, True)], "quadratic-k1e2")
    assert sel["all_diverged"]


def test_a_max_metric_selects_the_largest():
    assert protocol.select([run(0, 0.5), run(1, 0.9), run(2, 0.7)], "cnn-digits")["trial"] == 1  # val_accuracy


def test_empty_sweep_is_refused():
    with pytest.raises(ValueError, match="empty tuning sweep"):
        protocol.select([], "quadratic-k1e2")


def config(**over):
    """A valid profile config with the schema's defaults filled in, as the Snakefile has it."""
    from pathlib import Path

    from snakemake.utils import validate
    base = dict(profile="t", size="smoke", device="cpu", threads=1, tasks=["quadratic-k1e2"],
                optimizers=["adam"], tuning={"trials": 5, "seeds": [100, 101]}, final_seeds=[0],
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


TUNING = {"trials": 12, "seeds": [100, 101], "steps_fraction": 0.5}
SCHEDULE = {"name": "cosine", "warmup": 0.1, "floor": 0.1}


def fake_tune(monkeypatch, optimum):
    """The tune measurement with a training run replaced by a score of the distance (in decades of
    each coordinate: 1 - beta2 for beta2) from `optimum`; returns the module and the RunConfigs it was given."""
    from workflows.engine.measurements import tune
    configs = []

    def fake_train(cfg, threads=1):
        configs.append(cfg)
        c = protocol.COORDINATES
        d = sum(abs(c[k].log(cfg.hparams[k]) - c[k].log(v)) for k, v in optimum.items() if k in cfg.hparams)
        return {"config": {"seed": cfg.seed}, "final_metric": d + 1e-3 * cfg.seed, "diverged": False}
    monkeypatch.setattr(tune, "train", fake_train)
    monkeypatch.setattr(tune, "compact", lambda r: r)
    monkeypatch.setattr(tune, "record_header", lambda kind, config, *a: {"config": config})
    return tune, configs


def test_a_sweep_runs_every_trial_on_every_seed_under_the_schedule(monkeypatch):
    tune, configs = fake_tune(monkeypatch, {"lr": 3e-3, "weight_decay": 0.03})
    sweep = tune.run("lm-stdlib", "adamw", "smoke", tuning=TUNING, schedule=SCHEDULE)
    steps = 10   # half of the smoke size's 20 steps
    assert len(configs) == 12 * 2 and {c.seed for c in configs} == {100, 101}
    assert {(c.schedule, c.warmup, c.lr_floor, c.steps) for c in configs} == {("cosine", 1, 0.1, steps)}
    assert sweep["config"]["space"] == {"lr": [1e-5, 1.0], "weight_decay": [1e-3, 1.0], "beta2": [0.9, 0.999]}
    # the selected trial is the best of those run: nothing else scores better
    scores = {r["trial"]: r["final_metric"] for r in sweep["runs"] if r["config"]["seed"] == 100}
    assert sweep["selection"]["trial"] == min(scores, key=scores.get)
    rows = tune.trial_rows(sweep)
    assert len(rows) == 24 and sum(r["selected"] for r in rows) == 2
    assert {"lr", "weight_decay", "beta2", "final_metric", "seed", "trial", "stage", "at_edge",
            "edge_reason"} <= set(rows[0])
    assert rows[0]["schedule"] == "cosine, warm-up 1, floor 0.1"
    assert [r["stage"] for r in rows if r["seed"] == 100][:5] == ["lr"] * 5 and {r["trials"] for r in rows} == {12}
    assert sorted({r["beta2"] for r in rows}) == pytest.approx([0.9, 0.99, 0.999])   # the column is beta2 itself
    assert {"beta2"} <= {r["stage"] for r in rows}
    assert rows[0]["search_space"] == ("lr half-decade lattice from 0.00316 (range 1e-05…1), "
                                       "weight_decay decade lattice from 0.1 (range 0.001…1), "
                                       "beta2 decade lattice of 1 − beta2 from 0.99 (range 0.9…0.999)")


def test_weight_decay_is_not_tuned_where_it_reaches_no_parameter():
    # the quadratic's one parameter is a vector: the default policy decays matrices only
    assert protocol.search_space("quadratic-k1e2", "adamw") == {"lr": optimizers.get("adamw").lr_range}
    assert set(protocol.search_space("cnn-digits", "adamw")) == {"lr", "weight_decay"}


def test_an_entry_that_brings_its_own_schedule_runs_at_constant_lr(monkeypatch):
    tune, configs = fake_tune(monkeypatch, {"lr": 3e-3})
    tune.run("quadratic-k1e2", "schedulefree-adamw", "smoke", tuning=TUNING, schedule=SCHEDULE)
    assert {(c.schedule, c.warmup) for c in configs} == {("constant", 0)}


def test_the_final_run_takes_the_selection_and_the_schedule():
    from workflows.engine.measurements import final
    record = final.run("quadratic-k1e2", "adamw", "smoke", seed=0, hparams={"lr": 0.01, "weight_decay": 0.2},
                       schedule={"name": "wsd", "warmup": 0.05, "floor": 0.0, "decay": 0.3})
    c = record["config"]
    assert (c["schedule"], c["warmup"], c["lr_floor"], c["decay"]) == ("wsd", 5, 0.0, 0.3)
    assert record["optimizer"]["hparams"]["weight_decay"] == 0.2 and record["track"] == "tuned"


def test_a_task_with_a_fixed_lr_is_not_tuned():
    assert protocol.proposal("toy-quartic", "sgd", TUNING, []) == ({"lr": 0.1}, "fixed-lr")
    assert protocol.proposal("toy-quartic", "sgd", TUNING, [({"lr": 0.1}, 1.0)]) is None
    assert protocol.runs_per_sweep("toy-quartic", "sgd", TUNING) == 2   # one trial × 2 tuning seeds


def test_the_best_so_far_keeps_the_best_finite_value_in_the_metrics_direction():
    from report.tuning import best_so_far
    v = [math.nan, 3.0, 1.0, 2.0, math.nan, 0.5]   # NaN: a diverged trial
    assert best_so_far(v, "min")[1:].tolist() == [3.0, 1.0, 1.0, 1.0, 0.5] and math.isnan(best_so_far(v, "min")[0])
    assert best_so_far(v, "max")[1:].tolist() == [3.0, 3.0, 3.0, 3.0, 3.0]


def test_the_tuning_section_reads_the_tuning_table(tmp_path, monkeypatch):
    import pandas as pd

    from report import tuning as section
    # lr beyond adamw's first grid (2 extensions), weight decay below its (1), 1 - beta2 = 2e-4 beyond
    # beta2's: its stage ends the budget at beta2 0.999, an edge
    tune, _ = fake_tune(monkeypatch, {"lr": 0.1, "weight_decay": 0.03, "beta2": 1 - 2e-4})
    tuning = {"trials": 12, "seeds": [100, 101], "steps_fraction": 0.2}
    rows = []
    for opt in ("adamw", "sgd", "prodigy"):
        rows += tune.trial_rows(tune.run("lm-stdlib", opt, "smoke", tuning=tuning, schedule=SCHEDULE))
    pd.DataFrame(rows).to_csv(tmp_path / "tuning.csv", index=False)
    table = pd.read_csv(tmp_path / "tuning.csv")   # as the report reads it
    scores = section.trial_scores(table)
    assert len(scores) == 12 + 12 + 1 and scores.selected.sum() == 3
    assert section.complements(scores) == {"beta2"}
    text = "\n".join(section.section({"tuning": table}, tmp_path))
    assert "lr half-decade lattice from 0.00316 (range 1e-05…1), weight_decay decade lattice from 0.1" in text
    assert "Not tuned (one trial at the entry's defaults): prodigy" in text
    assert "Every tuned entry got 12 trials on every task." in text
    assert ("lr on the half-decade lattice, weight_decay on the decade lattice, beta2 on the decade lattice "
            "of 1 − beta2") in text
    assert "hard limits, lr 1e-07…1000, weight_decay 1e-06…10, beta2 0.9…0.9999" in text
    assert "| lr-extension " in text and "| beta2 " in text   # the stages as run, from the stage column
    sel = scores[scores.selected.astype(bool) & (scores.optimizer == "adamw")].iloc[0]
    assert section.shown("beta2", sel.beta2, {"beta2"}) == "0.999" and "beta2 0.999" in text   # not rounded to 1
    assert section.shown("beta2", 0.9999, {"beta2"}) == "0.9999" and section.shown("lr", 0.9999, set()) == "1"
    assert "The budget cut a stage before refinement in: adamw on lm-stdlib (beta2-extension)." in text
    assert "cosine, floor 0.1" in text   # no warm-up: 5 % of the 4 tuning steps, rounded
    assert (tmp_path / "figures/tuning-sensitivity-lm-stdlib.png").exists()
    assert (tmp_path / "figures/tuning-progress-lm-stdlib.png").exists()
    # a sweep with another count is flagged, and an edge selection is counted with its reason
    odd = table[~((table.optimizer == "sgd") & (table.trial == 11))].copy()
    odd.loc[odd.selected & (odd.optimizer == "adamw"), ["edge", "edge_reason"]] = ["lr", "lr: hard limit"]
    text = "\n".join(section.section({"tuning": odd}, tmp_path))
    assert "Not equal: 1 sweep(s) differ from the budget of 12: sgd on lm-stdlib (11)" in text
    assert "at an edge of what was tried after extension: 1 of 2 (50%)" in text and "lr: hard limit" in text
