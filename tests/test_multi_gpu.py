"""The multi-GPU recipe on a CPU machine, under the simulated accelerator (OPTBENCH_SIMULATED_CUDA,
workflows/engine/device.py): two Snakemake instances of one CUDA profile run at once in one
directory, each on its own GPU (CUDA_VISIBLE_DEVICES=0 and =1) and its own share of the pairs
(OPTBENCH_SHARD=0/2 and 1/2, target `shard`, workflows/rules/common.smk); then one run of the same
command without the shard aggregates every record into one report. The profile is the end-to-end
tests' (conftest.PUBLISHED) on the CUDA device with the gpu Snakemake profile's pool, its
measurements cut to tuning, the final runs and the step time (a timing job, which takes the whole
pool). No number here is a GPU number: every record says so."""
import json
import os
import subprocess

import pandas as pd
import yaml
from conftest import PUBLISHED, Repo, copy_tree

from workflows.engine import cli, measurements, plan, records

PROFILE = dict(PUBLISHED, profile="tiny-gpu", device="cuda", checkpoint_every=0,
               defaults_track={"tasks": []}, stability={"tasks": [], "scales": [1.0]})
FILE = "tiny-gpu.yaml"
RUNS = f"results/runs/{PROFILE['profile']}"
SIMULATED = {"OPTBENCH_SIMULATED_CUDA": "2"}
LOCKED = ("LockException", "Directory cannot be locked")


def setup(tmp_path) -> Repo:
    repo = Repo(copy_tree(tmp_path / "repo"))
    (repo.root / FILE).write_text(yaml.safe_dump(PROFILE))
    for name in ("CUDA_VISIBLE_DEVICES", "OPTBENCH_SHARD"):
        repo.env.pop(name, None)
    return repo


def command(repo: Repo, *targets) -> list[str]:
    return [*repo.snakemake_cmd, *targets, "--profile", "workflows/profiles/gpu", "--cores", "1", "--configfile", FILE]


def expected_records(config: dict, jobs) -> set[str]:
    """The records of `jobs`, as common.smk's measurement_records names them."""
    return {records.record_path(RUNS, rule, task, optimizer, seed)
            for rule, task, optimizer in jobs
            for seed in (config["final_seeds"] if measurements.get(rule).per_seed else [None])}


def written_records(root) -> dict[str, dict]:
    """Every record under RUNS (the final jobs' store and set-aside records left out), by path."""
    found = {}
    for path in (root / RUNS).rglob("*.json"):
        relative = str(path.relative_to(root))
        if not relative.startswith((f"{RUNS}/store/", f"{RUNS}/refused/")):
            found[relative] = json.loads(path.read_text())
    return found


def test_two_shards_on_two_simulated_gpus_then_one_aggregation(tmp_path):
    repo = setup(tmp_path)
    config = cli.plan_config(str(repo.root / FILE), [])
    jobs = plan.jobs(config)
    logs, procs = [], []
    for i in range(2):
        logs.append(tmp_path / f"shard{i}.log")
        env = dict(repo.env, **SIMULATED, CUDA_VISIBLE_DEVICES=str(i), OPTBENCH_SHARD=f"{i}/2")
        with open(logs[i], "w") as log:
            procs.append(subprocess.Popen(command(repo, "shard"), cwd=repo.root, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    outs = [log.read_text() for log in logs]
    for i, (code, out) in enumerate(zip(codes, outs)):
        assert code == 0, f"shard {i}:\n{out[-5000:]}"
        assert not any(word in out for word in LOCKED), f"shard {i} met the other's lock:\n{out[-3000:]}"
        assert "localrule aggregate:" not in out and "localrule report:" not in out   # records only

    written = written_records(repo.root)
    assert set(written) == expected_records(config, jobs)
    assert all(r["environment"]["simulated"] is True and r["environment"]["device"] == "cuda" for r in written.values())
    by_gpu = {i: {p for p, r in written.items() if r["environment"]["cuda_visible_devices"] == str(i)} for i in range(2)}
    assert by_gpu[0] | by_gpu[1] == set(written) and not by_gpu[0] & by_gpu[1]
    for i in range(2):   # each GPU wrote exactly its shard's records, both shards busy
        assert by_gpu[i] == expected_records(config, plan.shard_jobs(jobs, (i, 2))) != set()
    pairs = [{(parts["task"], parts["optimizer"]) for parts in map(lambda p: records.path_parts(repo.root / p, repo.root / RUNS),
                                                                   by_gpu[i])} for i in range(2)]
    assert not pairs[0] & pairs[1] and pairs[0] | pairs[1] == {(t, o) for _, t, o in jobs}   # disjoint pairs, all of them
    mtimes = {p: os.stat(repo.root / p).st_mtime_ns for p in written}

    proc = subprocess.run(command(repo), cwd=repo.root, env=dict(repo.env, **SIMULATED), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    ran = {line.split()[-1].rstrip(":") for line in out.splitlines() if line.startswith(("rule ", "localrule "))}
    assert ran == {"aggregate", "publish_tables", "report", "all"}, ran      # every record reused
    assert {p: os.stat(repo.root / p).st_mtime_ns for p in written} == mtimes

    tables = repo.root / "results/tables" / PROFILE["profile"]
    runs = pd.read_csv(tables / "runs.csv")
    every_pair = {(t, o) for _, t, o in jobs}
    assert set(zip(runs["task"], runs["optimizer"])) == every_pair
    assert json.loads((tables / "environment.json").read_text())["simulated"] is True
    report = (repo.root / "report" / PROFILE["profile"] / "README.md").read_text()
    environment = report[report.index("## Environment"):].split("\n## ")[0]
    assert "| device_name | simulated |" in environment
    for _, optimizer in every_pair:
        assert f"| {optimizer} " in report, optimizer


def test_a_shard_without_its_target_is_refused_before_any_job(tmp_path):
    """OPTBENCH_SHARD with the default target would aggregate one shard's records into the report and
    race the other shard for it: refused, naming what it would run."""
    repo = setup(tmp_path)
    env = dict(repo.env, **SIMULATED, CUDA_VISIBLE_DEVICES="0", OPTBENCH_SHARD="0/2")
    proc = subprocess.run(command(repo), cwd=repo.root, env=env, capture_output=True, text=True)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("optbench: ")]
    assert len(lines) == 1 and "OPTBENCH_SHARD=0/2" in lines[0] and "target `shard`" in lines[0], proc.stderr
    assert "aggregate" in lines[0] and "Traceback" not in proc.stderr
    assert not (repo.root / RUNS).exists()
