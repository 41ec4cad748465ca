"""Snakemake job: result records -> tidy CSV tables."""
import sys
from pathlib import Path

from tasks.runner import aggregate, records

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
p = snakemake.params  # noqa: F821
try:
    aggregate.write_tables(snakemake.input, Path(snakemake.output[0]).parent,  # noqa: F821
                           skipped=p.skipped, optimizer_names=p.optimizers, runs_dir=p.runs, size=p.size)
except records.RecordError as e:
    print(f"aggregate: {e}", file=sys.__stderr__)   # on the terminal, not only in the log
    raise
