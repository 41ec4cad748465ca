"""results/tables/<profile>/ -> report/<profile>/README.md and figures/*.png.

Reads the CSV tables and environment.json only: every number in the report comes from a run the
pipeline made. The body carries no timestamp beyond the environment block, no statistic is
randomised, and the figures carry no date, so the same tables give the same bytes.

Each section of the README is one module of one shape, `section(tables, out) -> list[str]`: its
markdown lines from the tables (none where the profile did not measure it), its figures saved
under `out`/figures/. This module orders the sections and joins them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from report import (across, baselines, claims, cost, inputs, loop_options, memory_model, monitor, per_task, precision,
                    preface, routing, schedules, self_tuning, skipped, state_memory, stability, steptime, studies,
                    tuning)

SECTIONS = (preface, claims, across, per_task, baselines, studies, schedules, self_tuning, skipped, tuning, stability,
            precision, steptime, loop_options, monitor, state_memory, memory_model, routing, cost)


def write_report(tables_dir, out_dir) -> Path:
    out = Path(out_dir)
    shutil.rmtree(out / "figures", ignore_errors=True)   # no figure outlives the tables it came from
    out.mkdir(parents=True, exist_ok=True)
    tables = inputs.read(Path(tables_dir))
    lines = [line for module in SECTIONS for line in module.section(tables, out)]
    path = out / "README.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path
