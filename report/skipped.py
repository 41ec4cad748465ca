"""The report's "Pairs not run" section, from skipped.csv: the task × optimizer pairs the profile
names but cannot run, and why."""
from __future__ import annotations

from pathlib import Path

from report.output import md_table


def section(tables: dict, out: Path) -> list[str]:
    if not len(tables["skipped"]):
        return []
    return ["## Pairs not run", "", md_table(tables["skipped"]), ""]
