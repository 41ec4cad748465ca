"""Snakemake job: loss-scale and lr-scale sweeps of one optimizer on one task."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import stability

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
hparams = records.read_selection(snakemake.input.summary, p.runs, p.size, "stability")["hparams"]  # noqa: F821
record = stability.run(w.task, w.optimizer, p.size, hparams=hparams, scales=p.stability["scales"],
                       dtype=p.stability["dtype"], device=p.device, schedule=p.schedule,
                       threads=snakemake.threads, **settings)  # noqa: F821
records.write(record, snakemake.output[0])  # noqa: F821
