"""Snakemake job: the tuning protocol of one optimizer on one task at the task's full horizon,
beside the profile's selection at its tuning horizon (the tune record)."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import tune_horizon

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
selection = records.read_selection(snakemake.input.summary, p.runs, p.size, "tune_horizon")  # noqa: F821
record = tune_horizon.run(w.task, w.optimizer, p.size, tuning=p.tuning, selection=selection, schedule=p.schedule,
                          precision=p.precision, device=p.device, threads=snakemake.threads, **settings)  # noqa: F821
row = tune_horizon.horizon_row(record)
print(f"short horizon {row['short_selected']}, full {row['full_selected']} (same: {row['same']})", file=sys.stderr)
records.write(record, snakemake.output[0])  # noqa: F821
