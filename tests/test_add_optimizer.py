"""Adding an optimizer to a published profile on a fresh clone (--config 'add_optimizers=[...]'): its
lists are extended, only the new entry's jobs run, the report under a derived name compares it with
every published optimizer, and a reuse that is not honest (other code, other configuration) is
refused by name before any job runs."""
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import RUN, Repo, copy_tree

from workflows.engine import config as profile_config
from workflows.engine import reuse

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "workflows/config/smoke.yaml"

ADD = (*RUN, "--config", "add_optimizers=[my-momentum]")


def test_additions_extend_every_list_of_the_profiles_optimizers():
    config = profile_config.load(SMOKE, ["add_optimizers=[nadam]"])
    assert config["optimizers"] == ["sgd", "adam", "adamw", "muon", "nadam"]
    assert config["task_optimizers"]["lm-stdlib-scale-x1"][-1] == "nadam"   # the scale study
    assert config["task_optimizers"]["lm-stdlib-qk"] == ["muonclip"]   # closed: the QK-clip study
    assert config["precision"]["optimizers"] == ["adam", "muon", "nadam"]
    base, source = profile_config.baseline(config, [SMOKE])
    assert profile_config.report_name(config, base) == "smoke+nadam"
    assert profile_config.override_rows(config, base, source) == []   # additions are not overrides
    other = profile_config.load(SMOKE, ["add_optimizers=[nadam]", "final_seeds=[0,1]"])
    assert profile_config.report_name(other, base).startswith("smoke+nadam+final_seeds-")


def test_a_closed_list_is_not_extended_even_where_it_followed_the_profiles():
    config = profile_config.load(SMOKE, ["add_optimizers=[nadam]", "closed_task_optimizers=[cnn-digits]"])
    assert config["task_optimizers"]["cnn-digits"] == ["sgd", "adam", "adamw", "muon"]   # as it was
    assert "nadam" in config["optimizers"] and "nadam" in config["task_optimizers"]["quadratic-k1e2"]
    with pytest.raises(profile_config.ConfigError, match="config closed_task_optimizers: unknown 'cnn-digit'; valid:"):
        profile_config.load(SMOKE, ["closed_task_optimizers=[cnn-digit]"])


def test_an_added_pair_that_would_be_the_fallback_under_another_name_is_left_out_and_said():
    # Muon takes no tensor of the logistic regression (1-D weights): every tensor would be AdamW's
    config = profile_config.load(SMOKE, ["add_tasks=[logreg-cancer]"])
    assert config["task_optimizers"]["logreg-cancer"] == ["sgd", "adam", "adamw"]
    assert profile_config.left_out(config) == [
        ("logreg-cancer", "muon", "muon updates no tensor of task logreg-cancer with its own rule "
                                  "(every tensor would go to its fallback adamw)")]
    assert profile_config.left_out(profile_config.load(SMOKE, ["add_optimizers=[nadam]"])) == []
    with pytest.raises(profile_config.ConfigError) as e:   # an addition whose every pair would be hollow
        profile_config.load(SMOKE, ["tasks=[quadratic-k1e2]", "optimizers=[sgd]", "add_optimizers=[muon]"])
    assert "'muon' can run none of the profile's tasks (muon updates no tensor of task quadratic-k1e2" in str(e.value)


def test_a_pairs_files_include_the_entry_files_it_imports():
    # LAMB is built from adam.py's adam_spec; the reference entries from adam.py's and adafactor.py's
    assert {"optimizers/lamb.py", "optimizers/adam.py", "tasks/quadratic.py"} <= reuse.pair_files("quadratic-k1e2", "lamb")
    assert {"optimizers/adam.py", "optimizers/adafactor.py"} <= reuse.pair_files("quadratic-k1e2", "adam-ref")
    assert "optimizers/adam.py" not in reuse.pair_files("quadratic-k1e2", "sgd")


def test_other_library_versions_refuse_the_reuse_by_name():
    import torch
    here = reuse.libraries()
    assert here["torch"] == torch.__version__ and "pandas" in here   # torch and the pinned ones
    assert reuse._libraries_differ(here) is None
    why = reuse._libraries_differ(here | {"torch": "2.0.0"})
    assert why == f"the installed libraries differ: torch (published 2.0.0, here {torch.__version__})"
    assert "not published" in reuse._libraries_differ(None)


def test_the_decision_is_read_back_as_the_main_process_made_it(tmp_path):
    decision = reuse.Decision("results/tables/tiny", [("quadratic-k1e2", "adam")],
                              {("quadratic-k1e2", "sgd"): "optimizers/sgd.py changed"}, "abc123", "a CPU")
    path = tmp_path / "logs/tiny+x/reuse_decision.json"
    reuse.write_decision(decision, path)
    os.utime(path, (0, 0))
    reuse.write_decision(decision, path)   # unchanged: not rewritten
    assert path.stat().st_mtime == 0 and reuse.read_decision(path) == decision
    with pytest.raises(FileNotFoundError, match="the main Snakemake process writes the reuse decision"):
        reuse.read_decision(tmp_path / "missing.json")


@pytest.mark.parametrize("override, message", [
    ("add_optimizers=[nadamm]", "config add_optimizers: unknown 'nadamm'; valid: adafactor"),
    ("add_optimizers=[adam]", "config add_optimizers: 'adam' already in the profile's optimizers"),
    ("add_tasks=[quadratic]", "config add_tasks: unknown 'quadratic'; valid: cnn-digits"),
    ("add_optimizers=[sparse-adam]", "'sparse-adam' can run none of the profile's tasks"),
])
def test_a_bad_addition_is_refused_naming_the_valid_values(override, message):
    with pytest.raises(profile_config.ConfigError) as e:
        profile_config.load(SMOKE, [override])
    assert message in str(e.value)


@pytest.fixture(scope="module")
def fresh(published, tmp_path_factory):
    """A fresh clone of a repository that published the tiny profile: its tables and report (what git
    holds), no records, and a new optimizer scaffolded the documented way (optbench new-optimizer)."""
    clone = Repo(copy_tree(tmp_path_factory.mktemp("fresh") / "repo", published.root))   # the code that published
    for path in ("results/tables/tiny", "report/tiny"):
        shutil.copytree(published.root / path, clone.root / path)
    clone.cmd(sys.executable, "-m", "workflows.engine.cli", "new-optimizer", "my-momentum")
    return clone


def measurement_jobs(log: str) -> dict:
    """{rule: count} of Snakemake's job stats (the first table it prints)."""
    table = log.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(n) for rule, n in (line.split() for line in table) if rule != "total"}


@pytest.mark.slow
def test_an_added_optimizer_runs_only_its_jobs_and_is_compared_with_the_published(fresh, tmp_path):
    clone = fresh.copy(tmp_path / "repo")
    log = clone.snakemake(*ADD)
    assert "adding my-momentum: reusing the published rows of 2 pairs (adam, sgd on 1 task)" in log
    # my-momentum's jobs: its tuning and finals, the defaults track, stability, step time
    assert measurement_jobs(log) == {"tune": 1, "final": 1, "defaults": 1, "stability": 1, "steptime": 1,
                                     "aggregate": 1, "publish_tables": 1, "report": 1, "all": 1}
    written = [p for p in (clone.root / "results/runs/tiny").rglob("*.json") if "store" not in p.parts]
    assert written and {p.parts[-2] if p.name.startswith("seed") else p.stem for p in written} == {"my-momentum"}
    tables = clone.root / "results/tables/tiny+my-momentum"
    runs = pd.read_csv(tables / "runs.csv", dtype=str, keep_default_na=False)
    assert set(runs.optimizer) == {"sgd", "adam", "my-momentum"}
    published = pd.read_csv(clone.root / "results/tables/tiny/runs.csv", dtype=str, keep_default_na=False)
    reused = runs[runs.optimizer != "my-momentum"].reset_index(drop=True)
    pd.testing.assert_frame_equal(reused[published.columns], published)   # the published rows, as published
    # the plan beside the measured cost covers the jobs run here alone: my-momentum's five
    plan = pd.read_csv(tables / "plan.csv")
    assert plan.jobs.sum() == 5 and set(plan.rule) == {"tune", "final", "defaults", "stability", "steptime"}
    readme = (clone.root / "report/tiny+my-momentum/README.md").read_text()
    assert "## Added to the published results" in readme and "**my-momentum**" in readme
    assert "Reused from `results/tables/tiny/`" in readme and "Ran here" in readme
    for name in ("sgd", "adam", "my-momentum"):
        assert f"| {name} " in readme
    assert (clone.root / "report/tiny/README.md").read_bytes() == (fresh.root / "report/tiny/README.md").read_bytes()
    assert "Nothing to be done" in clone.snakemake("-n", *ADD)
    # the generic registry tests pick the scaffolded entry up with no test written for it
    proc = clone.cmd(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     "tests/test_optimizers.py", "-k", "my-momentum", check=False)
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.slow
def test_a_changed_engine_file_or_configuration_refuses_the_reuse_by_name(fresh, tmp_path):
    clone = fresh.copy(tmp_path / "repo")
    with open(clone.root / "workflows/engine/schedule.py", "a") as f:
        f.write("# an edit\n")
    log = clone.snakemake("-n", *ADD)
    assert "not reusing 2 published pairs" in log
    assert "the engine's code differs: workflows/engine/schedule.py (changed since the published run)" in log
    assert "optimizer=sgd" in log and "optimizer=adam" in log   # what it reruns: every job
    (clone.root / "workflows/engine/schedule.py").write_bytes((fresh.root / "workflows/engine/schedule.py").read_bytes())
    log = clone.snakemake("-n", *ADD, "final_seeds=[0,1,2]")
    assert "the configuration differs in final_seeds (published [0, 1], here [0, 1, 2])" in log
    (clone.root / "optimizers/sgd.py").write_text((clone.root / "optimizers/sgd.py").read_text() + "# an edit\n")
    log = clone.snakemake("-n", *ADD)
    assert "optimizers/sgd.py changed since the published run" in log
    assert "optimizer=sgd" in log and "optimizer=adam" not in log   # only sgd's pairs rerun
