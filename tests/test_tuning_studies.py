"""The two tuning studies: the horizon check (the protocol again at the full horizon beside the
profile's selection) and the repeated tuning (the protocol with other tuning seeds), each from its
job (a synthetic score in place of training) to its table rows, the plan, the profile check and
the report's lines."""
import math
import re

import pandas as pd
import pytest

from workflows.engine import aggregate, config as profile_config, plan, records
from workflows.engine.measurements import tune, tune_horizon, tune_repeat

TUNING = {"trials": 6, "seeds": [100, 101], "steps_fraction": 0.5, "search": {}}
TASK, OPT = "quadratic-k1e2", "adam"   # lr alone on the quadratic, a metric to minimise, 100 smoke steps


def fake_train(monkeypatch, optimum_lr):
    """Training replaced by a score of the decades from `optimum_lr(steps, seed)`, squared."""
    def train(cfg, threads=1):
        d = math.log10(cfg.hparams["lr"] / optimum_lr(cfg.steps, cfg.seed))
        return {"config": {"seed": cfg.seed}, "final_metric": d * d + 1e-3 * (cfg.seed % 2), "diverged": False,
                "train_seconds": 0.5}
    monkeypatch.setattr(tune, "train", train)


def horizon_record(monkeypatch, optimum_lr):
    fake_train(monkeypatch, optimum_lr)
    short = tune.run(TASK, OPT, "smoke", tuning=TUNING)
    return short, tune_horizon.run(TASK, OPT, "smoke", tuning=TUNING, selection=short["selection"])


def test_a_full_horizon_that_moves_the_optimum_is_a_different_configuration(monkeypatch):
    # the optimum lr half a decade lower at the full horizon (100 steps) than at the tuning one (50)
    short, record = horizon_record(monkeypatch, lambda steps, seed: 1e-2 if steps == 100 else 10 ** -1.5)
    assert record["config"]["steps"] == 100 and record["config"]["short_steps"] == 50
    row = tune_horizon.horizon_row(record)
    assert row["short_lr"] == pytest.approx(10 ** -1.5) and row["full_lr"] == pytest.approx(0.01)
    assert row["lr_half_decades"] == pytest.approx(-1) and row["same"] is False
    assert row["full_trials"] == 6 and row["full_metric"] < row["full_metric_of_short"]
    assert tune_horizon.rows(record)["compute_seconds"] == pytest.approx(6 * 2 * 0.5)


def test_a_horizon_that_does_not_move_the_optimum_picks_the_same_configuration(monkeypatch):
    short, record = horizon_record(monkeypatch, lambda steps, seed: 1e-2)
    row = tune_horizon.horizon_row(record)
    assert row["same"] is True and row["lr_half_decades"] == 0
    assert row["full_metric_of_short"] == row["full_metric"]   # the same trial's score


def test_repeats_with_other_seeds_select_what_their_seeds_favour(monkeypatch):
    # each seed's optimum a half-decade apart: the repeats select three neighbouring lattice points
    fake_train(monkeypatch, lambda steps, seed: 10 ** (-2 + 0.5 * (seed - 102)))
    record = tune_repeat.run(TASK, OPT, "smoke", tuning=TUNING, repeat_seeds=[[101], [102], [103]])
    rows = tune_repeat.repeat_rows(record)
    assert [r["seeds"] for r in rows] == ["101", "102", "103"] and [r["repeat"] for r in rows] == [0, 1, 2]
    assert [r["lr"] for r in rows] == pytest.approx([10 ** -2.5, 1e-2, 10 ** -1.5])
    assert all(r["trials"] == 6 and r["steps"] == 50 for r in rows)
    assert rows[1]["tuning_metric"] == pytest.approx(0.0, abs=1e-2)   # its seed's optimum is on the grid


def write(record, runs, measurement):
    return records.write(record, records.record_path(runs, measurement, TASK, OPT))


def test_the_studies_records_aggregate_into_their_tables_and_the_report_states_them(monkeypatch, tmp_path):
    from report import tuning as section
    runs = tmp_path / "runs"
    short, record = horizon_record(monkeypatch, lambda steps, seed: 1e-2 if steps == 100 else 10 ** -1.5)
    paths = [write(record, runs, "tune_horizon")]
    fake_train(monkeypatch, lambda steps, seed: 10 ** (-2 + 0.5 * (seed - 102)))
    paths.append(write(tune_repeat.run(TASK, OPT, "smoke", tuning=TUNING, repeat_seeds=[[101], [102], [103]]),
                       runs, "tune_repeat"))
    out = aggregate.write_tables(paths, tmp_path / "tables", runs_dir=runs, size="smoke")
    horizon = pd.read_csv(out / "horizon_check.csv")
    repeats = pd.read_csv(out / "tuning_repeats.csv")
    assert len(horizon) == 1 and not horizon.same.iloc[0] and len(repeats) == 3
    # final runs in which adam beats sgd by 0.1 on every seed, and lion trails adam by 0.02
    final = pd.DataFrame([{"task": TASK, "optimizer": o, "seed": s, "final_metric": m + 0.01 * s, "diverged": False,
                           "direction": "min"} for s in range(3) for o, m in (("adam", 0.2), ("sgd", 0.3), ("lion", 0.22))])
    text = "\n".join(section.horizon_lines(horizon) + section.repeat_lines(repeats, final))
    assert "the same configuration on 0 of 1 pair(s)" in text
    assert re.search(r"\| lr 0\.0316 +\| lr 0\.01 +\| -1 +\| no ", text)   # short, full, half-decades, same
    assert re.search(r"\| 0\.00316, 0\.01, 0\.0316 +\| 2 ", text)   # the selected lrs span 2 half-decades
    assert "adam − lion: -0.02" in text and "adam − sgd" not in text   # sgd is not adam's neighbour


def cpu_config(**tuning):
    return profile_config.load(str(profile_config.PROFILES / "cpu.yaml"),
                               ["tuning={" + ", ".join(f"{k}: {v}" for k, v in
                                                       ({"trials": 12, "seeds": "[100, 101]", "steps_fraction": 0.3}
                                                        | tuning).items()) + "}"])


def test_the_studies_are_in_the_plan_with_their_cost():
    config = cpu_config(horizon_check="{cnn-digits: [adamw, sgd]}",
                        repeats="{tasks: [cnn-digits], optimizers: [adamw], seeds: [[101], [102], [103]]}")
    # --config merges into the profile's own studies (the LM's and the GAN's): the CNN's are these
    jobs = [j for j in plan.jobs(config) if j[0] in ("tune_horizon", "tune_repeat") and j[1] == "cnn-digits"]
    assert jobs == [("tune_horizon", "cnn-digits", "adamw"), ("tune_horizon", "cnn-digits", "sgd"),
                    ("tune_repeat", "cnn-digits", "adamw")]
    import tasks
    steps = tasks.get("cnn-digits").size("cpu")["steps"]
    assert plan.runs_and_steps(config, "tune_horizon", "cnn-digits", "adamw") == (24, 24 * steps)
    # three repeats of one seed each, at the tuning horizon
    assert plan.runs_and_steps(config, "tune_repeat", "cnn-digits", "adamw") == (36, 36 * int(steps * 0.3))
    smoke = profile_config.load(str(profile_config.PROFILES / "smoke.yaml"))   # names no study: none run
    assert not [j for j in plan.jobs(smoke) if j[0] in ("tune_horizon", "tune_repeat")]


@pytest.mark.parametrize("tuning, message", [
    (dict(horizon_check="{cnn-digit: [adamw]}"), r"tuning.horizon_check: task 'cnn-digit' is not a task the profile "
                                                 r"tunes; valid: .*cnn-digits"),
    (dict(horizon_check="{cnn-digits: [mars]}"), r"tuning.horizon_check.cnn-digits: 'mars' not tuned by the profile on "
                                                 r"cnn-digits; valid: sgd, momentum"),
    (dict(horizon_check="{lm-stdlib: [prodigy]}"), r"'prodigy' not tuned by the profile on lm-stdlib"),
    (dict(horizon_check="{toy-quartic: [sgd]}"), r"task 'toy-quartic' is not a task the profile tunes"),
    (dict(horizon_check="{cnn-digits: [adamw]}", steps_fraction=1.0), r"tunes at the full horizon already"),
    (dict(repeats="{tasks: [cnn-digits], optimizers: [mars]}"), r"tuning.repeats.optimizers: 'mars' not tuned"),
    (dict(repeats="{tasks: [lm-stdlib-scale-x1]}"), r"tuning.repeats.tasks: task 'lm-stdlib-scale-x1' is not"),
    (dict(repeats="{tasks: [cnn-digits], seeds: [[101], [0]]}"), r"tuning.repeats.seeds share \[0\] with final_seeds"),
])
def test_a_study_naming_a_pair_the_profile_does_not_tune_is_refused_before_any_job(tuning, message):
    with pytest.raises(profile_config.ConfigError, match=message):
        cpu_config(**tuning)


def test_a_full_horizon_task_is_tuned_at_its_steps_and_the_others_at_the_fraction():
    import tasks
    config = cpu_config(full_horizon="[lm-stdlib]")
    for task, fraction in (("lm-stdlib", 1.0), ("cnn-digits", 0.3)):
        steps = tasks.get(task).size("cpu")["steps"]
        runs, total = plan.runs_and_steps(config, "tune", task, "adamw")
        assert (runs, total) == (24, 24 * max(1, int(steps * fraction))), task
        assert tune.task_tuning(config["tuning"], task)["steps_fraction"] == fraction
    # a sweep's settings carry neither the studies nor another task's horizon: naming them reruns no sweep
    assert not {"horizon_check", "repeats", "full_horizon"} & set(tune.task_tuning(config["tuning"], "cnn-digits"))


@pytest.mark.parametrize("tuning, message", [
    (dict(full_horizon="[lm-stdlib]", horizon_check="{lm-stdlib: [adamw]}"),
     r"tuning.horizon_check: 'lm-stdlib' is tuned at its full horizon .*valid: tasks tuned at steps_fraction 0.3"),
    (dict(full_horizon="[lm-stdlb]"), r"tuning.full_horizon: unknown 'lm-stdlb'; valid: .*lm-stdlib"),
])
def test_a_horizon_setting_that_cannot_hold_is_refused_before_any_job(tuning, message):
    with pytest.raises(profile_config.ConfigError, match=message):
        cpu_config(**tuning)


def test_muonclip_on_the_qk_task_runs_at_the_base_tasks_muon_selection_and_has_no_sweep():
    config = cpu_config()
    assert tune.selection_source("lm-stdlib-qk", "muonclip") == ("lm-stdlib", "muon")
    assert tune.selection_source("lm-stdlib", "muon") == ("lm-stdlib", "muon")
    jobs = plan.jobs(config)
    assert ("final", "lm-stdlib-qk", "muonclip") in jobs and ("tune", "lm-stdlib", "muon") in jobs
    assert ("tune", "lm-stdlib-qk", "muonclip") not in jobs
    # without Muon's final runs on the base task its sweep still runs: the ablation's selection
    lm = [o for o in config["task_optimizers"]["lm-stdlib"] if o != "muon"]
    config = profile_config.load(str(profile_config.PROFILES / "cpu.yaml"),
                                 ["task_optimizers={lm-stdlib: [" + ", ".join(lm) + "]}"])
    jobs = plan.jobs(config)
    assert ("tune", "lm-stdlib", "muon") in jobs and ("final", "lm-stdlib", "muon") not in jobs


def test_a_claim_says_where_its_pairs_were_tuned_at_the_full_horizon():
    from report import claims
    runs = pd.DataFrame([{"task": t, "optimizer": o, "track": "tuned", "steps": 400} for t in ("lm", "cnn")
                         for o in ("adamw", "muon")])
    tuning = pd.DataFrame([{"task": t, "optimizer": o, "steps": n, "stage": "lr"} for t, n in (("lm", 400), ("cnn", 120))
                           for o in ("adamw", "muon")])
    check = pd.DataFrame([{"task": "cnn", "optimizer": "adamw", "same": False, "full_selected": "lr 0.01",
                           "short_selected": "lr 0.1"}])
    horizon = claims.horizons({"runs": runs, "tuning": tuning, "horizon_check": check})
    assert horizon[1] == {("lm", "adamw"), ("lm", "muon")}
    assert claims.horizon_note(horizon, [("lm", "muon")]) == "; tuning horizon: muon on lm tuned at the full horizon"
    note = claims.horizon_note(horizon, [("cnn", "adamw"), ("cnn", "muon")])
    assert "adamw on cnn NOT the same" in note and "muon on cnn tuned at a shorter horizon, not checked" in note
    from report import tuning as section
    words = section.full_horizon_words(tuning, runs)
    assert words.startswith("Tuned at the full horizon (the final runs' steps): lm. At a shorter one: cnn (120 of 400).")
