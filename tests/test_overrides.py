"""Overrides are never silent: a configuration that differs from its profile's file writes its report
and tables under a derived name (workflows.engine.config.report_name) whose header lists the
differences; the published report of a profile is written by its own file alone; and a failing
aggregation leaves the published tables in place (aggregate.smk's staging and publish_tables)."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from report import inputs, preface
from workflows.engine import config as profile_config

REPO = Path(__file__).resolve().parent.parent
SMOKE = "workflows/config/smoke.yaml"


def name_of(configfile=None, overrides=(), files=None):
    config = profile_config.load(configfile, overrides)
    given = files if files is not None else ([configfile] if configfile else [])
    return profile_config.report_name(config, profile_config.baseline(config, given)[0])


def test_the_profile_s_own_configuration_keeps_the_profile_s_name():
    assert name_of() == "cpu"
    assert name_of(SMOKE) == "smoke"
    assert name_of(SMOKE, ["threads=1.0"]) == "smoke"   # the value the file holds, coerced: no override


def test_an_override_gets_a_derived_name_the_same_for_the_same_overrides():
    name = name_of(None, ["optimizers=[adam,sgd]"])   # the README's example
    assert name.startswith("cpu+optimizers-") and len(name) == len("cpu+optimizers-") + 8
    assert name_of(None, ["optimizers=[adam,sgd]"]) == name
    assert name_of(None, ["optimizers=[adam,nadam]"]) != name
    assert name_of(SMOKE, ["tuning={trials: 16}"]).startswith("smoke+tuning-")


def test_another_file_is_an_override_only_where_its_content_differs(tmp_path):
    same, other = tmp_path / "same.yaml", tmp_path / "other.yaml"
    same.write_text((REPO / SMOKE).read_text())
    config = yaml.safe_load((REPO / SMOKE).read_text())
    other.write_text(yaml.safe_dump(config | {"final_seeds": [0, 1, 2, 3]}))
    assert name_of(str(same)) == "smoke"
    assert name_of(str(other)).startswith("smoke+final_seeds-")
    own = tmp_path / "mine.yaml"   # a profile the project does not ship: its file is its own
    own.write_text(yaml.safe_dump(config | {"profile": "mine"}))
    assert name_of(str(own)) == "mine"
    assert name_of(str(own), ["final_seeds=[0,1,2,3]"]).startswith("mine+final_seeds-")


def test_the_report_header_lists_each_difference(tmp_path):
    config = profile_config.load(SMOKE, ["tuning={trials: 16}", "optimizers=[adam,sgd]"])
    base, source = profile_config.baseline(config, [SMOKE])
    pd.DataFrame(profile_config.override_rows(config, base, source)).to_csv(tmp_path / "overrides.csv", index=False)
    out = tmp_path / profile_config.report_name(config, base)
    text = "\n".join(preface.section(inputs.read(tmp_path), out))
    assert f"# optbench report: `{out.name}` profile" in text
    assert "## Overrides" in text and "differs from `workflows/config/smoke.yaml`" in text
    assert '| optimizers | `["sgd", "adam", "adamw", "muon"]` | `["adam", "sgd"]` |' in text
    assert "| tuning.trials | `12` | `16` |" in text
    assert "results/runs/smoke/" in text
    assert "## Overrides" not in "\n".join(preface.section(inputs.read(tmp_path / "none"), tmp_path / "smoke"))


def snakemake(*args, cwd):
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(cwd), *args],
                          capture_output=True, text=True, cwd=cwd)


def test_the_readme_example_does_not_plan_the_published_report(tmp_path):
    proc = snakemake("-n", "--config", "optimizers=[adam,sgd]", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = name_of(None, ["optimizers=[adam,sgd]"])
    assert "report/cpu/README.md" not in proc.stdout and "results/tables/cpu/" not in proc.stdout
    assert f"report/{name}/README.md" in proc.stdout and f"results/tables/{name}/runs.csv" in proc.stdout
    assert "results/runs/cpu/tune/logreg-cancer/adam.json" in proc.stdout   # the records are the profile's
    assert f"differs from workflows/config/cpu.yaml in optimizers: its report goes to report/{name}/" in proc.stderr


def test_a_failing_aggregation_leaves_the_published_tables(tmp_path):
    """Every job marked done (each output written, then --touch: no training); then a record whose
    content changed reruns the aggregation, which refuses it: the run fails and every published
    table is as it was."""
    tiny = dict(profile="tiny", size="smoke", device="cpu", threads=1, tasks=["quadratic-k1e2"],
                optimizers=["sgd", "adam"], tuning={"trials": 5, "seeds": [100]}, final_seeds=[0, 1],
                stability={"tasks": ["quadratic-k1e2"], "scales": [0.1, 1.0, 10.0]},
                steptime={"tasks": ["quadratic-k1e2"], "steps": 3, "warmup": 1, "rounds": 2})
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    run = ("--configfile", "tiny.yaml", "--cores", "1")
    summary = snakemake(*run, "--summary", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr[-3000:]
    for line in summary.stdout.splitlines()[1:]:   # every output of the DAG, then marked done
        path = tmp_path / line.split("\t")[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"published {path.name}\n" if "results/tables/" in line else "")
    tables = sorted((tmp_path / "results/tables/tiny").iterdir())
    assert "runs.csv" in [t.name for t in tables]
    done = snakemake(*run, "--touch", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # a record whose content changed (Snakemake reruns on content, not on a newer mtime alone)
    (tmp_path / "results/runs/tiny/final/quadratic-k1e2/adam/seed0.json").write_bytes(b"not a record")
    failed = snakemake(*run, cwd=tmp_path)
    assert failed.returncode != 0 and "aggregate:" in failed.stderr, failed.stderr[-3000:]
    assert "rule publish_tables" not in failed.stdout + failed.stderr.split("Error in rule")[0]
    for table in tables:
        assert table.read_text() == f"published {table.name}\n", f"{table} was rewritten or deleted"
