"""Snakemake job: result records -> tidy CSV tables."""
import sys

from report import aggregate

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
aggregate.write_tables(snakemake.input, snakemake.output[0])  # noqa: F821
