"""Adding an optimizer to a published profile on a fresh clone (--config 'add_optimizers=[...]'): its
lists are extended, only the new entry's jobs run, the report under a derived name compares it with
every published optimizer, and a reuse that is not honest (other code, other configuration) is
refused by name before any job runs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflows.engine import config as profile_config

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "workflows/config/smoke.yaml"

RADAM = '''"""RAdam (Liu et al. 2020): Adam with the variance of its adaptive lr rectified in the first steps."""
import torch
from optimizers import OptimizerSpec, itemsize, numel, register, scalar_bytes

register(OptimizerSpec(
    name="radam", family="adam", paper="Liu et al. 2020, Algorithm 2",
    implementation="torch.optim.RAdam", build=torch.optim.RAdam,
    defaults=dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    lr_range=(1e-5, 1.0),
    state_bytes=lambda shape, dtype: 2 * numel(shape) * itemsize(dtype) + scalar_bytes(),
))
'''

# A published profile of two tasks and two optimizers with every per-pair measurement the smoke
# profile has (tuning, finals, the defaults track, stability, step time), small enough to run twice.
MINI = dict(profile="mini", size="smoke", device="cpu", threads=1, tasks=["quadratic-k1e2", "rosenbrock"],
            optimizers=["sgd", "adam"], tuning={"trials": 2, "seeds": [100, 101], "steps_fraction": 0.3},
            final_seeds=[0, 1], defaults_track={"tasks": ["rosenbrock"]},
            stability={"tasks": ["quadratic-k1e2"], "scales": [0.1, 1.0, 10.0]},
            steptime={"tasks": ["quadratic-k1e2"], "steps": 3, "warmup": 1, "rounds": 2})
ADD = ("--cores", "2", "--configfile", "mini.yaml", "--config", "add_optimizers=[radam]")


def test_additions_extend_every_list_of_the_profiles_optimizers():
    config = profile_config.load(SMOKE, ["add_optimizers=[nadam]"])
    assert config["optimizers"] == ["sgd", "adam", "adamw", "muon", "nadam"]
    assert config["task_optimizers"]["lm-stdlib-scale-x1"][-1] == "nadam"   # the scale study
    assert config["task_optimizers"]["lm-stdlib-qk"][-1] == "nadam"         # the QK-clip study
    assert config["precision"]["optimizers"] == ["adam", "muon", "nadam"]
    base, source = profile_config.baseline(config, [SMOKE])
    assert profile_config.report_name(config, base) == "smoke+nadam"
    assert profile_config.override_rows(config, base, source) == []   # additions are not overrides
    other = profile_config.load(SMOKE, ["add_optimizers=[nadam]", "final_seeds=[0,1]"])
    assert profile_config.report_name(other, base).startswith("smoke+nadam+final_seeds-")


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


def source_files() -> list[str]:
    """The repository's tracked (and untracked, not ignored) files, without results or reports."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    return [name for name in files if (REPO / name).is_file() and not name.startswith("results/")
            and not (name.startswith("report/") and name.count("/") > 1)]


def copy_tree(src: Path, dest: Path, files) -> Path:
    """A fresh clone of the working tree at `src` (its `files` only) and the mini profile's file."""
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, dest / name)
    (dest / "mini.yaml").write_text(yaml.safe_dump(MINI))
    return dest


def snakemake(root: Path, *args, check=True) -> str:
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=root,
                          env=dict(os.environ, PYTHONPATH=str(root)))
    assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A fresh clone of a repository that publishes the mini profile: its tables and report (what git
    holds), no records, and a new optimizer file, optimizers/radam.py."""
    files = source_files()
    ran = copy_tree(REPO, tmp_path_factory.mktemp("published") / "repo", files)
    snakemake(ran, "--cores", "2", "--configfile", "mini.yaml")
    clone = copy_tree(ran, tmp_path_factory.mktemp("fresh") / "repo", files)   # the code that published
    for published in ("results/tables/mini", "report/mini"):
        shutil.copytree(ran / published, clone / published)
    (clone / "optimizers/radam.py").write_text(RADAM)
    return clone


def measurement_jobs(log: str) -> dict:
    """{rule: count} of Snakemake's job stats (the first table it prints)."""
    table = log.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]
    return {rule: int(n) for rule, n in (line.split() for line in table) if rule != "total"}


@pytest.mark.slow
def test_an_added_optimizer_runs_only_its_jobs_and_is_compared_with_the_published(fresh, tmp_path):
    clone = tmp_path / "repo"
    shutil.copytree(fresh, clone, symlinks=True)
    log = snakemake(clone, *ADD)
    assert "adding radam: reusing the published rows of 4 pairs (adam, sgd on 2 tasks)" in log
    # radam's jobs: its tuning and finals on both tasks, the defaults track, stability, step time
    assert measurement_jobs(log) == {"tune": 2, "final": 2, "defaults": 1, "stability": 1, "steptime": 1,
                                     "aggregate": 1, "publish_tables": 1, "report": 1, "all": 1}
    written = [p for p in (clone / "results/runs/mini").rglob("*.json") if "store" not in p.parts]
    assert written and {p.parts[-2] if p.name.startswith("seed") else p.stem for p in written} == {"radam"}
    tables = clone / "results/tables/mini+radam"
    runs = pd.read_csv(tables / "runs.csv", dtype=str, keep_default_na=False)
    assert set(runs.optimizer) == {"sgd", "adam", "radam"}
    published = pd.read_csv(clone / "results/tables/mini/runs.csv", dtype=str, keep_default_na=False)
    reused = runs[runs.optimizer != "radam"].reset_index(drop=True)
    pd.testing.assert_frame_equal(reused[published.columns], published)   # the published rows, as published
    readme = (clone / "report/mini+radam/README.md").read_text()
    assert "## Added to the published results" in readme and "**radam**" in readme
    assert "Reused from `results/tables/mini/`" in readme and "Ran here" in readme
    for name in ("sgd", "adam", "radam"):
        assert f"| {name} " in readme
    assert (clone / "report/mini/README.md").read_bytes() == (fresh / "report/mini/README.md").read_bytes()
    assert "Nothing to be done" in snakemake(clone, "-n", *ADD)


@pytest.mark.slow
def test_a_changed_engine_file_or_configuration_refuses_the_reuse_by_name(fresh, tmp_path):
    clone = tmp_path / "repo"
    shutil.copytree(fresh, clone, symlinks=True)
    with open(clone / "workflows/engine/schedule.py", "a") as f:
        f.write("# an edit\n")
    log = snakemake(clone, "-n", *ADD)
    assert "not reusing 4 published pairs" in log
    assert "the engine's code differs: workflows/engine/schedule.py (changed since the published run)" in log
    assert "optimizer=sgd" in log and "optimizer=adam" in log   # what it reruns: every job
    (clone / "workflows/engine/schedule.py").write_bytes((fresh / "workflows/engine/schedule.py").read_bytes())
    log = snakemake(clone, "-n", *ADD, "final_seeds=[0,1,2]")
    assert "the configuration differs in final_seeds (published [0, 1], here [0, 1, 2])" in log
    (clone / "optimizers/sgd.py").write_text((clone / "optimizers/sgd.py").read_text() + "# an edit\n")
    log = snakemake(clone, "-n", *ADD)
    assert "optimizers/sgd.py changed since the published run" in log
    assert "optimizer=sgd" in log and "optimizer=adam" not in log   # only sgd's pairs rerun
