"""Snakemake job: the tuning protocol of one optimizer on one task repeated with other tuning seeds."""
import sys

from workflows.engine.harness import job_device_settings
from workflows.engine import records
from workflows.engine.measurements import tune_repeat

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
settings = job_device_settings(p)   # the profile's device settings; the GPU pool
record = tune_repeat.run(w.task, w.optimizer, p.size, tuning=p.tuning, repeat_seeds=p.repeat_seeds,
                         schedule=p.schedule, precision=p.precision, device=p.device,
                         threads=snakemake.threads, **settings)  # noqa: F821
for row in tune_repeat.repeat_rows(record):
    print(f"seeds {row['seeds']}: {row['selected']} ({row['metric']} {row['tuning_metric']:.4g})", file=sys.stderr)
records.write(record, snakemake.output[0])  # noqa: F821
