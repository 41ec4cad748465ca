"""The aggregator and the report generator on a small set of real result files."""
import hashlib

import numpy as np
import pandas as pd
import pytest

from report import generate, inputs, studies
from workflows.engine import aggregate, records
from workflows.engine.measurements import final, loop_options, stability, steptime, tune


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    paths = []
    for opt in ("sgd", "adam"):
        sweep = tune.run("quadratic-k1e2", opt, "smoke", {"trials": 2, "seeds": [100, 101], "steps_fraction": 0.2},
                         schedule={"name": "cosine", "warmup": 0.1, "floor": 0.1})
        paths.append(records.write(sweep, root / f"tune-{opt}.json"))
        for seed in (0, 1):
            r = final.run("quadratic-k1e2", opt, "smoke", seed=seed, hparams=sweep["selection"]["hparams"],
                          monitor_every=10)
            paths.append(records.write(r, root / f"final-{opt}-{seed}.json"))
        st = stability.run("quadratic-k1e2", opt, "smoke", hparams={"lr": 0.01}, scales=[0.1, 1.0, 10.0], dtype="float64")
        paths.append(records.write(st, root / f"stability-{opt}.json"))
        paths.append(records.write(steptime.run("quadratic-k1e2", opt, "smoke", steps=3, warmup=1, rounds=2),
                                   root / f"steptime-{opt}.json"))
    # the pictures: a path through Rosenbrock's valley, a GAN's samples
    for task, lr in (("rosenbrock", 1e-2), ("gan-ring8", 1e-3)):
        paths.append(records.write(final.run(task, "adam", "smoke", seed=0, hparams={"lr": lr}),
                                   root / f"final-{task}.json"))
    lo = loop_options.run("cnn-digits", "sgd", "smoke", steps=4, rounds=1, monitor_every=2)
    paths.append(records.write(lo, root / "loop-options.json"))
    return aggregate.write_tables(paths, root / "tables" / "fixture")


def test_tables_are_tidy(tables):
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs[runs.task == "quadratic-k1e2"]) == 4 and set(runs.optimizer) == {"sgd", "adam"}
    assert (runs.state_bytes == runs.state_bytes_model).all()
    st = pd.read_csv(tables / "stability.csv")
    sgd = st[(st.optimizer == "sgd") & (st.axis == "loss")]
    assert sgd.gap_to_lr_scaled.max() < 1e-9  # SGD: loss x c and lr x c are the same trajectory
    assert set(pd.read_csv(tables / "steptime.csv").optimizer) == {"sgd", "adam"}
    assert len(pd.read_csv(tables / "tuning.csv")) == 8   # 2 optimizers × 2 trials × 2 tuning seeds
    samples = pd.read_csv(tables / "samples.csv")
    assert set(samples.task) == {"gan-ring8"} and len(samples) > 100
    lo = pd.read_csv(tables / "loop_options.csv").set_index("option")
    assert lo.loc["plain", "max_loss_gap_to_plain"] == 0 and lo.loc["warm-up 10 + cosine", "max_loss_gap_to_plain"] > 0
    assert lo.loc["accumulate 2 micro-batches", "activation_bytes"] < lo.loc["plain", "activation_bytes"]


def test_report_has_every_section_and_figure(tables, tmp_path):
    readme = generate.write_report(tables, tmp_path / "fixture")
    text = readme.read_text()
    for heading in ("## Environment", "## Task `quadratic-k1e2`", "## Tuning", "## Stability", "## Step time",
                    "## Optimizer state memory", "## Training monitor", "## Training-loop options"):
        assert heading in text
    for link in ("figures/curves-quadratic-k1e2.png", "figures/stability-quadratic-k1e2.png",
                 "figures/monitor-quadratic-k1e2.png", "figures/trajectories-rosenbrock.png",
                 "figures/samples-gan-ring8.png"):
        assert link in text and (tmp_path / "fixture" / link).stat().st_size > 1000
    assert "| sgd " in text and "| adam " in text


def test_report_is_byte_stable(tables, tmp_path):
    def digest(d):
        return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(d.rglob("*")) if p.is_file()}
    a, b = tmp_path / "a" / "fixture", tmp_path / "b" / "fixture"
    generate.write_report(tables, a)
    generate.write_report(tables, b)
    assert digest(a) == digest(b)


def test_aggregate_refuses_foreign_records(tmp_path, tables):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 99, "kind": "run", "config": {}, "config_hash": "", "environment": {}}')
    with pytest.raises(records.RecordError, match="bad.json: schema_version 99"):
        aggregate.write_tables([bad], tmp_path / "t")


def test_a_section_says_nothing_of_what_the_profile_did_not_measure(tmp_path):
    tables = inputs.read(tmp_path / "no-tables")
    said = {module.__name__: module.section(tables, tmp_path / "empty") for module in generate.SECTIONS}
    assert said.pop("report.preface")[0] == "# optbench report: `empty` profile"
    assert said.pop("report.claims") == ["_No final runs in the tables._"]
    assert {name: lines for name, lines in said.items() if lines} == {}


def test_the_qk_study_shows_the_optimizers_the_tables_hold(tmp_path):
    runs, curves = [], []
    for opt in ("lion", "muon", "muonclip"):
        for seed in range(2):
            runs.append(dict(task="qk", optimizer=opt, seed=seed, track="tuned", lr=0.01, diverged=False,
                             final_metric=2.0 + 0.01 * seed))
            curves += [dict(task="qk", optimizer=opt, seed=seed, series="max_attn_logit", step=s, value=v)
                       for s, v in ((0, 0.1), (10, 12.0))]
    tables = {"runs": pd.DataFrame(runs), "curves": pd.DataFrame(curves), "figures": {"qk": {"qk_tau": 10.0}}}
    text = "\n".join(studies.qk_section(tables, tmp_path))
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["lion", "muon", "muonclip"]   # under the header


def test_the_qk_study_reads_its_comparators_from_the_base_task(tmp_path):
    """lm-stdlib-qk runs MuonClip only: Muon and AdamW are the base task's runs (qk_base), paired by
    seed; a Lion run on the base is not borrowed, and the QK task's own rows win over the base's."""
    runs, curves = [], []
    for task, opt, loss in (("lm", "adamw", 2.0), ("lm", "muon", 1.9), ("lm", "lion", 2.1), ("qk", "muonclip", 1.9)):
        for seed in range(5):
            runs.append(dict(task=task, optimizer=opt, seed=seed, track="tuned", lr=0.01, diverged=False,
                             final_metric=loss + 0.01 * seed))
            curves += [dict(task=task, optimizer=opt, seed=seed, series="max_attn_logit", step=s, value=v)
                       for s, v in ((0, 0.1), (10, 12.0))]
    figures = {"qk": {"qk_tau": 10.0, "qk_base": "lm"}}
    tables = {"runs": pd.DataFrame(runs), "curves": pd.DataFrame(curves), "figures": figures}
    assert studies.qk_optimizers(tables, "qk") == ["adamw", "muon", "muonclip"]
    cost = studies.qk_claims(tables)[-1]
    assert cost["verdict"] != "not measured" and "Diverged seeds muonclip 0, muon 0" in cost["evidence"]
    alone = {**tables, "figures": {"qk": {"qk_tau": 10.0}}}   # no base named: nothing borrowed
    assert studies.qk_optimizers(alone, "qk") == ["muonclip"]


def test_ranks_use_common_ground_and_ties_share_a_rank():
    from report import across
    rng = np.random.default_rng(0)
    means = {"a": 1.0, "b": 1.0, "c": 2.0}   # a and b equal, c clearly worse (lower is better)
    rows = []
    for task, opts in (("t1", "abc"), ("t2", "abc"), ("t4", "abc"), ("t1-ablation", "a"), ("t3", "ab")):
        for opt in opts:
            for seed in range(5):
                rows.append(dict(task=task, task_family="f", optimizer=opt, seed=seed, direction="min",
                                 final_metric=means[opt] + 0.1 * seed + 0.001 * rng.standard_normal(),
                                 diverged=False, step_time_median=1e-3, state_bytes_per_param=8.0))
    runs = pd.DataFrame(rows)
    assert across.variants(runs.task.unique()) == {"t1-ablation"}
    tasks, opts = across.common_ground(across.primary(runs))
    assert (tasks, opts) == (["t1", "t2", "t4"], ["a", "b", "c"])   # 9 cells against 4 tasks × a, b: 8
    ranks = across.tie_ranks(runs[runs.task == "t1"])
    assert ranks.to_dict() == {"a": 1, "b": 1, "c": 3}
