"""Snakemake job: optimizer.step() time of one optimizer against AdamW, same process."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import steptime

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
st = p.steptime
record = steptime.run(w.task, w.optimizer, p.size, steps=st["steps"], warmup=st["warmup"],
                      rounds=st["rounds"], baseline=st["baseline"], device=p.device, threads=p.torch_threads,
                      **settings)
records.write(record, snakemake.output[0])  # noqa: F821
