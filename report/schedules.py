"""The report's schedule-ablation section, from runs.csv: one problem under different schedules."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from report import stats
from report.output import fmt, md_table


def section(tables: dict, out: Path) -> list[str]:
    """Tasks that are the same problem (the data hashes of every seed, and the model's size) run under different
    schedules: the schedule ablation, per optimizer each at its own tuned hyperparameters. A task's
    schedule is its runs' most common one (an entry that takes none, schedule-free, runs constant
    inside any task)."""
    runs = tables["runs"]
    if "schedule" not in runs:
        return []
    lines = []
    for _, g in runs.groupby(["task_family", "metric", "n_params"]):
        schedule = {t: h.schedule.mode().iloc[0] for t, h in g.groupby("task")}
        # the same problem: every seed's data hash equal between the tasks (a hash covers its seed)
        same_data = len({frozenset(h.data_hash) for _, h in g.groupby("task")}) == 1
        if len(set(schedule.values())) < 2 or not same_data:
            continue
        rows = []
        for opt, h in g.groupby("optimizer"):
            row = {"optimizer": opt}
            for task in sorted(schedule):
                ok = h[(h.task == task) & ~h.diverged]
                mean, lo, hi = stats.t_interval(ok.final_metric.tolist())
                row[f"{task} ({schedule[task]})"] = f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]" if len(ok) else "–"
            if all(v != "–" for k, v in row.items() if k != "optimizer"):
                rows.append(row)
        direction = "lower" if g.direction.iloc[0] == "min" else "higher"
        lines += [f"Final {g.metric.iloc[0]} ({direction} is better; 95 % CI over the final seeds), each "
                  "schedule tuned separately with the same budget:", "", md_table(pd.DataFrame(rows)), ""]
    if not lines:
        return []
    return ["## Schedule ablation", "",
            "The profile's schedule against a constant learning rate on the same problem (same data hash and "
            "model), every optimizer tuned for each schedule with the same trials and seeds.", ""] + lines
