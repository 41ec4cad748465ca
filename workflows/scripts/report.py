"""Snakemake job: tables -> report/<report>/README.md and figures (<report>: the profile, or its derived name)."""
import sys
from pathlib import Path

from report import generate

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (snakemake is injected)
generate.write_report(Path(snakemake.input[0]).parent, Path(snakemake.output[0]).parent)  # noqa: F821
