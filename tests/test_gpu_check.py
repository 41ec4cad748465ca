"""The GPU check (workflows/gpu_check.py) on the CPU: its dry mode runs every step's control flow
(under the simulated accelerator where a step names the device) and writes every step's file, each
labelled as no GPU measurement; without CUDA the real check refuses in one line."""
import json
import os
import subprocess
import sys
from pathlib import Path

from workflows import gpu_check

REPO = Path(__file__).resolve().parent.parent


def check(*args, **env):
    return subprocess.run([sys.executable, "-m", "workflows.gpu_check", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300)


def test_dry_run_writes_every_step_labelled_as_no_gpu_measurement(tmp_path):
    out = check(str(tmp_path / "check"), "dry")
    assert out.returncode == 0, out.stdout + out.stderr
    summary = [json.loads(line) for line in (tmp_path / "check" / "summary.jsonl").read_text().splitlines()]
    assert [s["step"] for s in summary] == list(gpu_check.STEPS)
    for name in gpu_check.STEPS:
        record = json.loads((tmp_path / "check" / f"{name}.json").read_text())
        assert record["status"] == "ok" and record["measured_on"] == gpu_check.DRY, record
        assert record["result"], name
        assert f"{name}: ok" in out.stdout and gpu_check.DRY in out.stdout
    assert (tmp_path / "check" / "cuda_tests.xml").exists()
    sharing = json.loads((tmp_path / "check" / "sharing.json").read_text())["result"]
    assert len(sharing["shared"]) == gpu_check.SHARED_JOBS["dry"]
    assert {j["jobs_per_device"] for j in sharing["shared"]} == {gpu_check.SHARED_JOBS["dry"]}
    assert sharing["alone"][0]["jobs_per_device"] == 1


def test_without_cuda_the_check_refuses_in_one_line(tmp_path):
    out = check(str(tmp_path / "check"), CUDA_VISIBLE_DEVICES="")
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "CUDA" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "check").exists()


def test_a_wrong_argument_is_named_with_the_valid_ones(tmp_path):
    out = check(str(tmp_path), "fast")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "'fast'" in out.stderr and "dry" in out.stderr
