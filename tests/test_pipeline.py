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
from conftest import RUN, Repo, copy_tree

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
    ("threads=0", "config threads: 0 is less than the minimum of 1"),
    ("size=huge", "config size: 'huge' is not one of ['smoke', 'cpu', 'gpu']"),
    ("final_seeds=[0,a]", "config final_seeds[1]: 'a' is not of type 'integer'"),
    ("tuning={trials: x, seeds: [100, 101]}", "config tuning.trials: 'x' is not of type 'integer'"),
    ("stability={scales: [1, .nan]}", "config stability.scales[1]: '.nan' is not of type 'number'"),
    ("steptime={baseline: adamm}", "config steptime.baseline: unknown 'adamm'; valid:"),
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


def test_list_and_nested_overrides_from_the_command_line_are_numbers(tmp_path):
    """--config gives list items and nested values as strings; they are coerced from the schema."""
    proc = snakemake("-n", "--configfile", str(REPO / "workflows/config/smoke.yaml"), "--config",
                     "final_seeds=[0,1,2,3]", "tuning={trials: 14, seeds: [100]}",
                     "stability={scales: [1e-4, 1, 1.0e+4]}", cwd=tmp_path)
    assert "results/runs/smoke/final/quadratic-k1e2/sgd/seed3.json" in proc.stdout


def test_config_file_without_profile_is_refused(tmp_path):
    """Without `profile:` a file would get the cpu profile merged under it and write into its report."""
    cfg = yaml.safe_load((REPO / "workflows/config/smoke.yaml").read_text())
    del cfg["profile"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", "--configfile", str(tmp_path / "c.yaml"), cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config file {tmp_path / 'c.yaml'}: missing key 'profile'" in out
    assert "report/cpu" not in out and "results/runs/cpu" not in out


def test_default_profile_applies_without_configfile(tmp_path):
    """No --configfile: the cpu profile, with --config overrides on top (the README's example)."""
    out = snakemake("-n", "--config", "optimizers=[adam,sgd]", cwd=tmp_path).stdout
    assert "report/cpu+optimizers-" in out and "report/cpu/README.md" not in out   # an override's own report
    # embeddings-zipf-sparse follows the profile's optimizers (every other cpu task has its own list)
    assert "results/runs/cpu/tune/embeddings-zipf-sparse/sgd.json" in out
    assert "results/runs/cpu/tune/embeddings-zipf-sparse/sparse-adam.json" not in out


TIMING = ["step_time_median", "train_seconds", "seconds_to_target"]


def same_tables(a: Path, b: Path):
    for name in ("runs.csv", "tuning.csv", "curves.csv", "stability.csv"):
        x, y = pd.read_csv(a / "results/tables/tiny" / name), pd.read_csv(b / "results/tables/tiny" / name)
        pd.testing.assert_frame_equal(x.drop(columns=TIMING, errors="ignore"), y.drop(columns=TIMING, errors="ignore"))


@pytest.mark.slow
def test_end_to_end_an_edited_optimizer_reruns_only_its_jobs(published, tmp_path):
    """An edited entry file reruns only its jobs. (Adding an entry, scaffolded the documented way, and
    the generic tests picking it up: tests/test_add_optimizer.py, on the same published run.)"""
    repo = published.copy(tmp_path / "repo")
    run = repo.snakemake
    readme = (repo.root / "report/tiny/README.md").read_text()
    assert "| sgd " in readme and "| adam " in readme
    # one job per task x optimizer runs its seeds; the store keeps each finished seed (the kill test)
    assert (repo.root / "logs/tiny/final/quadratic-k1e2/adam.log").exists()
    assert len(list((repo.root / "results/runs/tiny/store/final/quadratic-k1e2/adam").glob("*/seed*.json"))) == 2
    assert "Nothing to be done" in run("-n", *RUN)

    # Make every sgd result older than optimizers/sgd.py, as if the file had been edited after the
    # run: only sgd's jobs, then aggregation and the report, rerun.
    for path in (repo.root / "results/runs/tiny").rglob("*"):
        if "sgd" in path.relative_to(repo.root).as_posix():
            os.utime(path, (0, 0))
    plan = run("-n", *RUN)
    assert "optimizer=sgd" in plan and "optimizer=adam" not in plan
    for rule in ("tune", "final", "defaults", "stability", "steptime", "aggregate", "report"):
        assert f"rule {rule}:" in plan
    run(*RUN)


@pytest.mark.slow
def test_missing_corrupt_or_misplaced_records_are_recomputed(published, tmp_path):
    """A deleted record reruns its job, aggregation and the report (the report alone as the target
    would leave it missing); a record aggregation refuses (random bytes, seed 0's file copied as
    seed 1's) is moved to refused/, aggregation fails naming it, and the same command recomputes it."""
    repo = published.copy(tmp_path / "repo")
    runs = repo.root / "results/runs/tiny"
    (runs / "final/quadratic-k1e2/sgd/seed1.json").unlink()
    plan = repo.snakemake("-n", *RUN)
    assert "Nothing to be done" not in plan
    assert "results/runs/tiny/final/quadratic-k1e2/sgd/seed1.json" in plan
    for rule in ("final", "aggregate", "report"):
        assert f"rule {rule}:" in plan
    assert "rule tune:" not in plan

    copied, garbage = runs / "final/quadratic-k1e2/adam/seed1.json", runs / "stability/quadratic-k1e2/adam.json"
    shutil.copyfile(runs / "final/quadratic-k1e2/adam/seed0.json", copied)
    garbage.write_bytes(os.urandom(2000))
    out = repo.snakemake(*RUN, check=False)
    assert "Nothing to be done" not in out
    assert "final/quadratic-k1e2/adam/seed1.json: the path says seed 1 but the record holds seed 0" in out
    assert "stability/quadratic-k1e2/adam.json: corrupt result file" in out
    assert "moved to results/runs/tiny/refused/final/quadratic-k1e2/adam/seed1.json" in out
    assert "Run the same snakemake command again" in out
    assert (runs / "final/quadratic-k1e2/sgd/seed1.json").exists()          # the deleted one: recomputed
    assert not copied.exists() and not garbage.exists()
    assert (repo.root / "results/tables/tiny/runs.csv").exists()           # kept while aggregation fails

    out = repo.snakemake(*RUN)   # the same command, as the message says
    for rule in ("final", "stability", "aggregate", "report"):
        assert f"rule {rule}:" in out
    assert "rule tune:" not in out
    same_tables(published.root, repo.root)
    assert "Nothing to be done" in repo.snakemake("-n", *RUN)


@pytest.mark.slow
def test_a_kill_loses_only_the_runs_in_flight(published, tmp_path):
    """SIGKILL to the whole process group (Snakemake and its jobs) while a final run is in flight,
    after another seed of the same job has finished: the finished seed is in the store
    (results/runs/<profile>/store/, not a declared output, so --rerun-incomplete does not delete
    it), no partial record is left, the README's `snakemake --unlock --configfile ...` unlocks,
    the same command finishes the rest (the in-flight run resuming from its checkpoint), the
    finished seed's stored record is never rewritten and is the very file (hard link) the job
    declares as its output, and the tables are the uninterrupted run's."""
    from workflows.engine import records
    repo = Repo(copy_tree(tmp_path / "repo"))
    runs = repo.root / "results/runs/tiny"
    command = ("--profile", "workflows/profiles/local", "--configfile", "tiny.yaml")
    proc = repo.popen(*command, "--cores", "1")   # one job at a time: the next starts once one is done

    def finished_and_in_flight():
        """A stored final seed whose job has another seed in flight (its checkpoint exists)."""
        for done in runs.glob("store/final/*/*/*/seed*.json"):
            task, optimizer = done.parts[-4], done.parts[-3]
            ckpts = runs / "checkpoints" / task / optimizer
            flying = [c.stem for c in ckpts.glob("seed*.ckpt") if c.stem != done.stem]
            if flying and not (runs / "final" / task / optimizer / f"{done.stem}.json").exists():
                return done, flying
        return None, []

    deadline = time.monotonic() + 300
    while (found := finished_and_in_flight())[0] is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done, flying = found
    assert done is not None, "no final run was ever in flight beside a finished seed of its job"
    assert not (repo.root / "results/tables/tiny/runs.csv").exists(), "the kill came too late to test anything"
    # every stored seed but the in-flight one (which may have been written in the last instant)
    # (bytes, inode): records.write replaces a file by a new one (os.replace), so the same inode is
    # the same write; the mtime is not compared: Snakemake touches a job's outputs as it finishes,
    # and the declared output is a hard link to the stored file
    finished = {p: (p.read_bytes(), p.stat().st_ino)
                for p in runs.glob("store/final/*/*/*/seed*.json")
                if not (p.parent.parent == done.parent.parent and p.stem in flying)}
    assert done in finished
    for path in runs.glob("**/*.json"):
        records.read(path)   # every record on disk is whole
    assert list((repo.root / ".snakemake/locks").iterdir()), "Snakemake left no lock: nothing to unlock"

    assert "Unlocked working directory" in repo.snakemake("--unlock", "--configfile", "tiny.yaml")
    assert not (repo.root / ".snakemake/locks").exists() or not list((repo.root / ".snakemake/locks").iterdir())
    repo.snakemake(*command, "--cores", "2")

    for path, (data, inode) in finished.items():
        assert (path.read_bytes(), path.stat().st_ino) == (data, inode), \
            f"{path} was recomputed after the kill"
        task, optimizer = path.parts[-4], path.parts[-3]
        assert (runs / "final" / task / optimizer / path.name).stat().st_ino == inode, "the output is not the stored run"
    assert len(list(runs.glob("final/*/*/seed*.json"))) == 4
    same_tables(published.root, repo.root)


def test_slurm_profile_dry_run_submits_gpu_jobs(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    proc = snakemake("-n", "--profile", str(REPO / "workflows/profiles/slurm"),
                     "--configfile", str(REPO / "workflows/config/gpu.yaml"), cwd=tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "rule tune:" in out and "gpu=1" in out
    assert "slurm_partition=gpu" in out
