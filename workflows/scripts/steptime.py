"""Snakemake job: optimizer.step() time of one optimizer against AdamW, same process."""
import os
import sys

from workflows.engine.device import JOBS_PER_DEVICE_VARIABLE
from workflows.engine.harness import DEVICE_DEFAULTS
from workflows.engine import records
from workflows.engine.measurements import steptime

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
# the run's device settings where the profile moves them from the defaults (params only then), and
# how many jobs share the device (the GPU pool), for the records
settings = {k: getattr(p, k) for k in DEVICE_DEFAULTS if hasattr(p, k)}
if hasattr(p, "jobs_per_device"):
    os.environ[JOBS_PER_DEVICE_VARIABLE] = str(p.jobs_per_device)
st = p.steptime
record = steptime.run(w.task, w.optimizer, p.size, steps=st["steps"], warmup=st["warmup"],
                      rounds=st["rounds"], baseline=st["baseline"], device=p.device, threads=p.torch_threads,
                      **settings)
records.write(record, snakemake.output[0])  # noqa: F821
