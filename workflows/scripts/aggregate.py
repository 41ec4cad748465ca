"""Snakemake job: result records -> tidy CSV tables."""
import sys
from pathlib import Path

from tasks.runner import aggregate

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
aggregate.write_tables(snakemake.input, Path(snakemake.output[0]).parent,  # noqa: F821
                       skipped=snakemake.params.skipped, optimizer_names=snakemake.params.optimizers)  # noqa: F821
