"""Snakemake job: the learning-rate sweep of one optimizer on one task."""
import sys

from tasks.runner import measure, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
record = measure.tune(w.task, w.optimizer, p.size, seeds=p.tuning["seeds"],
                      grid_points=p.tuning["grid_points"], refine=p.tuning["refine"],
                      steps_fraction=p.tuning["steps_fraction"],
                      device=p.device, threads=snakemake.threads)  # noqa: F821
print(f"selected lr {record['selection']['lr']:.3g} (edge: {record['selection']['at_edge']})", file=sys.stderr)
records.write(record, snakemake.output[0])  # noqa: F821
