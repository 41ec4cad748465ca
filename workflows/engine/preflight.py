"""The device a run names, checked against this machine before anything runs on it.

    refusal(device, named, instead)   # None where `device` can run here, else one line saying why and what to do

One check for `optbench run --device` and `optbench plan --calibrate` (workflows.engine.cli) and for
the pipeline (the Snakefile's onstart, through workflows/rules/common.smk: a real run on this machine,
never a dry run). Without it a CUDA profile on a machine without a usable GPU fails in every job
separately, at `.to("cuda")`, with "Torch not compiled with CUDA enabled" in its log.

Under OPTBENCH_SIMULATED_CUDA (workflows.engine.device: tests only) the devices counted are the
simulated ones, so a CUDA profile's DAG runs on a CPU machine with every record marked simulated.

torch is imported only for a CUDA device: a cpu profile's Snakefile never loads it here.
"""
from __future__ import annotations

import os

# The oldest Linux driver that runs a CUDA major's builds (NVIDIA's "minimum required driver version
# for CUDA minor version compatibility", CUDA Toolkit release notes, table 2). PyPI's torch 2.13.0
# wheel is a CUDA 13.0 build, so a driver older than 580 leaves torch seeing no CUDA device.
DRIVERS = {"13": "580", "12": "525.60.13", "11": "450.80.02"}


def _build() -> str:
    """What torch was built for, and the driver that build needs."""
    import torch
    cuda = torch.version.cuda
    if cuda is None:
        return f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    driver = DRIVERS.get(cuda.split(".")[0])
    needs = f", which needs an NVIDIA driver >= {driver}" if driver else ""
    return f"torch {torch.__version__} is built for CUDA {cuda}{needs} (`nvidia-smi` shows this machine's)"


def refusal(device: str, named: str, instead: str) -> str | None:
    """None where `device` (cpu, cuda or cuda:N, the syntax already checked) can run here; else one
    line: `named` (how the caller's user gave the device), why not (torch's version and CUDA build,
    the driver that build needs, or the devices there are) and the valid choices: `instead` (the
    caller's way to run on the CPU), or the CUDA build of the installed torch."""
    if not device.startswith("cuda"):
        return None
    import torch
    from workflows.engine import device as devices
    index = int(device.partition(":")[2] or 0)
    count = devices.cuda_devices()
    if index < count:
        return None
    if count:
        visible, simulated = os.environ.get("CUDA_VISIBLE_DEVICES"), devices.simulation()
        what = f"{simulated} simulates" if simulated else "this machine has"
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None and not simulated else ""
        valid = ", ".join(["cpu", "cuda"] + [f"cuda:{i}" for i in range(count)])
        return f"{named}: {what} {count} CUDA device{'s' * (count != 1)}{shown}; valid: {valid}"
    release = torch.__version__.split("+")[0]
    return (f"{named}: CUDA is not available on this machine: {_build()}; valid: cpu ({instead}), or a "
            f"machine whose NVIDIA GPU and driver run a CUDA build of torch {release} (install that "
            f"build first: README, Quick start)")
