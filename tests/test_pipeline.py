"""The Snakemake DAG: dry runs of every profile, refusal of bad configs, and a small end-to-end run."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
PROFILES = sorted(p.stem for p in (REPO / "workflows" / "config").glob("*.yaml"))


def snakemake(*args, cwd=REPO, check=True):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(cwd), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.parametrize("profile", PROFILES)
def test_dry_run_of_every_profile(profile, tmp_path):
    out = snakemake("-n", "--configfile", str(REPO / "workflows/config" / f"{profile}.yaml"), cwd=tmp_path).stdout
    for rule in ("tune", "final", "aggregate", "report"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out
    assert f"report/{profile}/README.md" in out


@pytest.mark.parametrize("override, message", [
    ("optimizers=[adam,adamm]", "unknown 'adamm'; valid:"),
    ("final_seeds=1", "is not of type 'array'"),
    ("threads=0", "threads"),
    ("size=huge", "huge"),
])
def test_bad_config_is_refused_before_any_job(override, message, tmp_path):
    proc = snakemake("-n", "--configfile", str(REPO / "workflows/config/smoke.yaml"), "--config", override,
                     cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_unknown_optimizer_in_config_file_names_valid_ones(tmp_path):
    cfg = yaml.safe_load((REPO / "workflows/config/smoke.yaml").read_text())
    cfg["optimizers"] = ["adam", "adamm"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--configfile", str(tmp_path / "c.yaml"), cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "unknown 'adamm'; valid:" in proc.stdout + proc.stderr


TINY = dict(profile="tiny", size="smoke", device="cpu", threads=1, tasks=["quadratic-k1e2"],
            optimizers=["sgd", "adam"], tuning={"grid_points": 2, "seeds": [100], "steps_fraction": 0.3},
            final_seeds=[0, 1], stability={"tasks": ["quadratic-k1e2"], "scales": [0.1, 1.0, 10.0]},
            steptime={"tasks": ["quadratic-k1e2"], "steps": 3, "warmup": 1, "rounds": 2})


def copy_repo(dest: Path) -> Path:
    """The tracked tree in a temporary place, so that a test can add files without touching ours."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("results/", "report/smoke", "report/cpu", "report/gpu")):
            continue
        src, dst = REPO / name, dest / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return dest


@pytest.mark.slow
def test_end_to_end_add_an_optimizer_and_rerun_only_its_jobs(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    env = dict(os.environ, PYTHONPATH=str(repo))  # the copy's packages shadow the installed ones

    def run(*args, check=True):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(repo), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo, env=env)
        assert proc.returncode == 0 or not check, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    config = repo / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    args = ("--configfile", str(config), "--cores", "2")
    run(*args)
    readme = (repo / "report/tiny/README.md").read_text()
    assert "| sgd " in readme and "| adam " in readme
    assert (repo / "logs/tiny/final/quadratic-k1e2/adam.log").exists()
    assert "Nothing to be done" in run("-n", *args)

    # Make every sgd result older than optimizers/sgd.py, as if the file had been edited after the
    # run: only sgd's jobs, then aggregation and the report, rerun.
    for path in (repo / "results/runs/tiny").rglob("*"):
        if "sgd" in path.relative_to(repo).as_posix():
            os.utime(path, (0, 0))
    plan = run("-n", *args)
    assert "optimizer=sgd" in plan and "optimizer=adam" not in plan
    for rule in ("tune", "final", "stability", "steptime", "aggregate", "report"):
        assert f"rule {rule}:" in plan
    run(*args)

    # Add an optimizer the documented way: the scaffold, then its name in the profile.
    proc = subprocess.run([sys.executable, "-m", "tasks.runner.cli", "new-optimizer", "my-momentum"], cwd=repo,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (repo / "optimizers/my_momentum.py").exists()
    config.write_text(yaml.safe_dump(TINY | {"optimizers": ["sgd", "adam", "my-momentum"]}))
    plan = run("-n", *args)
    assert "optimizer=my-momentum" in plan and "optimizer=sgd" not in plan and "optimizer=adam" not in plan
    run(*args)
    assert "| my-momentum " in (repo / "report/tiny/README.md").read_text()

    # The generic registry tests pick it up with no test written for it.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_optimizers.py", "-k", "my-momentum"], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and " passed" in proc.stdout, proc.stdout[-3000:]


@pytest.mark.slow
def test_pipeline_killed_mid_way_finishes_on_rerun_with_the_same_tables(tmp_path):
    """SIGKILL to the whole process group (Snakemake and its jobs) once the first final run is
    written: no partial record is left, and unlock + rerun gives the uninterrupted run's tables."""
    from tasks.runner import records
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY | {"checkpoint_every": 5}))
    target = "results/tables/tiny/runs.csv"
    args = ["--configfile", str(config), "--cores", "2", "--rerun-incomplete", target]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    killed.mkdir()
    snakemake(*args, cwd=whole.mkdir() or whole)

    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(killed), *args]
    proc = subprocess.Popen(cmd, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(killed.glob("results/runs/tiny/final/*/*/*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / target).exists(), "the kill came too late to test anything"
    for path in killed.glob("results/runs/**/*.json"):
        records.read(path)   # every record on disk is whole
    snakemake("--unlock", *args, cwd=killed)
    snakemake(*args, cwd=killed)

    timing = ["step_time_median", "train_seconds", "seconds_to_target"]
    for name in ("runs.csv", "tuning.csv", "curves.csv", "stability.csv"):
        a = pd.read_csv(whole / "results/tables/tiny" / name)
        b = pd.read_csv(killed / "results/tables/tiny" / name)
        pd.testing.assert_frame_equal(a.drop(columns=timing, errors="ignore"), b.drop(columns=timing, errors="ignore"))


def test_slurm_profile_dry_run_submits_gpu_jobs(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    proc = snakemake("-n", "--profile", str(REPO / "workflows/profiles/slurm"),
                     "--configfile", str(REPO / "workflows/config/gpu.yaml"), cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule tune:" in out and "gpu=1" in out
    assert "slurm_partition=gpu" in out
