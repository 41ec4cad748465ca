"""Snakemake job: the hyperparameter search of one optimizer on one task."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import tune

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
record = tune.run(w.task, w.optimizer, p.size, tuning=p.tuning, schedule=p.schedule,
                  precision=p.precision, device=p.device, threads=snakemake.threads, **settings)  # noqa: F821
selection = record["selection"]
print(f"selected {selection['hparams']} (edge: {selection['at_edge']}, why: {selection['edge_reason']}; "
      f"budget cut: {selection.get('stopped_in') or 'no stage'})", file=sys.stderr)
records.write(record, snakemake.output[0])  # noqa: F821
