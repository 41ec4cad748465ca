"""Snakemake job: the n-gram and compressor baselines of one LM task on its test data."""
import sys

from workflows.engine import records
from workflows.engine.measurements import baselines

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
w, p = snakemake.wildcards, snakemake.params  # noqa: F821
record = baselines.run(w.task, w.optimizer, p.size, threads=snakemake.threads)  # noqa: F821
records.write(record, snakemake.output[0])  # noqa: F821
