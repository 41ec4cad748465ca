"""The gpu profile's whole DAG on CPU at the smoke size: every rule and config key of the profile
runs in CI, only CUDA kernels are left for a GPU. The device and size are overridden with --config;
task lists, seeds and trials are cut in a copy of the profile's file (Snakemake's --config merges a
mapping into the file's, so task_optimizers could not be emptied there) so that the run stays
short; every rule keeps at least one job, every other key is the profile's."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from workflows.engine import measurements

REPO = Path(__file__).resolve().parent.parent
GPU = yaml.safe_load((REPO / "workflows/config/gpu.yaml").read_text())
SMALL = dict(tasks=["quadratic-k1e2", "lm-stdlib"], optimizers=["adamw", "muon"], task_optimizers={},
             # the two tuning studies too (the gpu profile names none): every measurement runs once
             tuning={**GPU["tuning"], "trials": 12, "seeds": [100], "full_horizon": [], "horizon_check": {"lm-stdlib": ["adamw"]},
                     "repeats": {"tasks": ["quadratic-k1e2"], "optimizers": ["adamw"], "seeds": [[101], [102]]}},
             final_seeds=[0],
             defaults_track={"tasks": ["quadratic-k1e2"]},
             stability={**GPU["stability"], "tasks": ["lm-stdlib"], "scales": [1.0, 1.0e+4],
                        "overrides": {"lm-stdlib": {**GPU["stability"]["overrides"]["lm-stdlib"], "optimizers": ["adamw"]}}},
             train_precision={"lm-stdlib": GPU["train_precision"]["lm-stdlib"]},
             steptime={**GPU["steptime"], "optimizers": ["muon"], "steps": 2, "warmup": 1, "rounds": 1},
             loop_options={**GPU["loop_options"], "steps": 4, "rounds": 1},
             precision={**GPU["precision"], "tasks": ["lm-stdlib"], "optimizers": ["adamw"], "seeds": [0],
                        "static_scales": [1.0]})
MEASUREMENTS = tuple(measurements.names())
RULES = MEASUREMENTS + ("aggregate", "report")


def test_gpu_profile_dag_runs_on_cpu_at_smoke_size(tmp_path):
    config = GPU | SMALL
    (tmp_path / "gpu-small.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--configfile", str(tmp_path / "gpu-small.yaml"), "--config", "device=cpu", "size=smoke", "checkpoint_every=0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    for rule in RULES:
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, rule
    # the file and the --config differ from workflows/config/gpu.yaml: an override, written under a
    # derived name (<profile>+<keys>-<hash>), never over the published gpu tables and report
    derived = [d.name for d in (tmp_path / "results/tables").iterdir() if d.name.startswith(GPU["profile"] + "+")]
    assert len(derived) == 1 and not (tmp_path / "results/tables" / GPU["profile"]).exists(), derived
    tables = tmp_path / "results/tables" / derived[0]
    cost = pd.read_csv(tables / "cost.csv")
    assert set(cost["rule"]) == set(MEASUREMENTS)   # every measurement job benchmarked
    assert (cost["s"] > 0).all()
    summary = pd.read_csv(tables / "cost_summary.csv").iloc[0]
    assert summary["invocations"] == 1 and summary["cores"] == 2 and 0 < summary["core_utilisation"] <= 1
    plan = pd.read_csv(tables / "plan.csv")
    assert plan.groupby("rule")["jobs"].sum().to_dict() == cost.groupby("rule").size().to_dict()
    assert (tmp_path / "report" / derived[0] / "README.md").exists()
    assert not (tmp_path / "report" / GPU["profile"]).exists()
