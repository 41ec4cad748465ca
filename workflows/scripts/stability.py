"""Snakemake job: loss-scale and lr-scale sweeps of one optimizer on one task."""
import os
import sys

from workflows.engine.device import JOBS_PER_DEVICE_VARIABLE
from workflows.engine.harness import DEVICE_DEFAULTS
from workflows.engine import records
from workflows.engine.measurements import stability

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
# the run's device settings where the profile moves them from the defaults (params only then), and
# how many jobs share the device (the GPU pool), for the records
settings = {k: getattr(p, k) for k in DEVICE_DEFAULTS if hasattr(p, k)}
if hasattr(p, "jobs_per_device"):
    os.environ[JOBS_PER_DEVICE_VARIABLE] = str(p.jobs_per_device)
try:
    hparams = records.read_input(snakemake.input.summary, p.runs, p.size)["selection"]["hparams"]  # noqa: F821
except records.RecordError as e:
    print(f"stability: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
    raise
record = stability.run(w.task, w.optimizer, p.size, hparams=hparams, scales=p.stability["scales"],
                       dtype=p.stability["dtype"], device=p.device, schedule=p.schedule,
                       threads=snakemake.threads, **settings)  # noqa: F821
records.write(record, snakemake.output[0])  # noqa: F821
