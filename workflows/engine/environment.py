"""Where a result came from: versions, device, git commit, and a hash of the configuration."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from workflows.engine import device as device_module

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "numpy", "transformers", "bitsandbytes", "pytorch-optimizer", "sophia-opt",
            "schedulefree", "prodigyopt", "dadaptation", "opt-einsum", "scikit-learn", "pandas", "seaborn",
            "snakemake")


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("-dirty" if dirty and commit != "unknown" else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


# The CPU features that change results in the last bits or the speed: which vectorised kernels
# torch dispatches to (AVX2, AVX-512), and whether bf16 arithmetic is native (Muon's Newton-Schulz
# runs in bf16, and CPUs with and without native bf16 round differently).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@functools.cache
def cpu_model() -> tuple[str, list[str]]:
    """The CPU's model name and which of CPU_FLAGS it has (Linux /proc/cpuinfo; elsewhere the
    platform's processor string and no flags)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", platform.machine()), [f for f in CPU_FLAGS if f in flags]


def environment(device, threads: int) -> dict:
    """Versions, machine and the device's facts (`workflows.engine.device`: on CUDA the GPU, its
    capability and memory, driver, CUDA and cuDNN versions and the fp32 precision and determinism in
    effect; everywhere the fp32 precision and determinism the run asked for, CUDA_VISIBLE_DEVICES and
    how many jobs shared the device, where known)."""
    facts = device_module.get(device).facts()
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": facts.pop("cuda"),
        "device": facts.pop("device"),
        "device_name": facts.pop("device_name", None) or cpu_model()[0],
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "git_commit": git_commit(),
        "packages": package_versions(),
    }
    model, flags = cpu_model()
    env["cpu"] = model
    env["cpu_flags"] = " ".join(flags)
    # the kernels torch picked on this CPU (ATEN_CPU_CAPABILITY can lower it): DEFAULT, AVX2, AVX512
    env["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return env | facts
