"""The device preflight: a CUDA device on a machine without a usable one is refused in one line
naming the device, torch's version and CUDA build and what to do, before any job; a dry run and
`optbench plan` of a CUDA profile still work on a CPU machine."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workflows.engine import preflight

REPO = Path(__file__).resolve().parent.parent
GPU_PROFILE = REPO / "workflows/config/gpu.yaml"


def refusal(device):
    return preflight.refusal(device, f"device {device!r}", instead="run on the CPU")


def test_cpu_is_never_refused_and_loads_no_torch():
    code = ("import sys\nfrom workflows.engine import preflight\n"
            "assert preflight.refusal('cpu', 'x', 'y') is None\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:2"])
def test_cuda_without_a_device_names_torch_and_its_build(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    line = refusal(device)
    assert "\n" not in line and line.startswith(f"device {device!r}: CUDA is not available")
    assert f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)" in line
    assert "valid: cpu (run on the CPU)" in line
    assert f"a CUDA build of torch {torch.__version__.split('+')[0]}" in line


def test_a_cuda_build_without_a_usable_gpu_names_the_driver_it_needs(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    assert "is built for CUDA 13.0, which needs an NVIDIA driver >= 580" in refusal("cuda")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    assert "built for CUDA 12.8, which needs an NVIDIA driver >= 525.60.13" in refusal("cuda")


def test_a_device_index_past_the_count_lists_the_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert refusal("cuda:1") is None and refusal("cuda") is None
    assert refusal("cuda:2") == ("device 'cuda:2': this machine has 2 CUDA devices (CUDA_VISIBLE_DEVICES=0,3); "
                                 "valid: cpu, cuda, cuda:0, cuda:1")


def test_simulated_devices_are_counted_and_named_as_simulated(monkeypatch):
    monkeypatch.setenv("OPTBENCH_SIMULATED_CUDA", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert refusal("cuda") is None
    assert refusal("cuda:1") == ("device 'cuda:1': OPTBENCH_SIMULATED_CUDA=2 with CUDA_VISIBLE_DEVICES=1 simulates "
                                 "1 CUDA device; valid: cpu, cuda, cuda:0")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert refusal("cuda:1") is None


def snakemake(workdir, *args):
    """The pipeline of this checkout run in `workdir` (-d): records, logs and .snakemake go there."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal needs a machine without CUDA")
def test_a_cuda_profile_is_refused_before_any_job_and_a_dry_run_still_plans(tmp_path):
    proc = snakemake(tmp_path, "--cores", "1", "--configfile", str(GPU_PROFILE))
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("optbench: ")]
    assert len(lines) == 1, proc.stderr
    assert "config device 'cuda'" in lines[0] and "torch.version.cuda is None" in lines[0]
    assert "--config device=cpu" in lines[0] and "Refused before any job" in lines[0]
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
    assert not list((tmp_path / ".snakemake").glob("locks/*")), "the lock was left behind"
    dry = snakemake(tmp_path, "-n", "--configfile", str(GPU_PROFILE))
    assert dry.returncode == 0, dry.stderr
    assert "rule tune:" in dry.stdout and not (tmp_path / "results").exists()
