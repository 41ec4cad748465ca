"""Snakemake job: the precision measurement of one optimizer on one task
(workflows.engine.measurements.precision)."""
import os
import sys

from workflows.engine.device import JOBS_PER_DEVICE_VARIABLE
from workflows.engine.harness import DEVICE_DEFAULTS
from workflows.engine import records
from workflows.engine.measurements import precision

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
# the run's device settings where the profile moves them from the defaults (params only then), and
# how many jobs share the device (the GPU pool), for the records
settings = {k: getattr(p, k) for k in DEVICE_DEFAULTS if hasattr(p, k)}
if hasattr(p, "jobs_per_device"):
    os.environ[JOBS_PER_DEVICE_VARIABLE] = str(p.jobs_per_device)
try:
    selection = records.read_input(snakemake.input.summary, p.runs, p.size)["selection"]  # noqa: F821
except records.RecordError as e:
    print(f"precision: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
    raise
hparams = selection["hparams"]
cfg = p.precision
record = precision.run(w.task, w.optimizer, p.size, hparams=hparams, seeds=cfg["seeds"],
                       static_scales=cfg["static_scales"], device=p.device,
                       threads=snakemake.threads,  # noqa: F821
                       steps=precision.steps(w.task, p.size, cfg["steps_fraction"]), schedule=p.schedule,
                       probe_every=cfg.get("probe_every"), **settings)   # optional: None gives 10 probes a run
records.write(record, snakemake.output[0])  # noqa: F821
