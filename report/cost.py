"""The report's "What this report cost" section, from cost.csv, cost_summary.csv and plan.csv alone.

Compute is the jobs' summed wall seconds (`s` of Snakemake's benchmark files) and CPU seconds;
core utilisation is busy core-seconds (CPU seconds) over wall time × cores, summed over the
profile's invocations (wall time: their union, overlapping shards once); the plan's estimate
(workflows/engine/plan.py, calibrated on the same machine) sits beside the measured seconds, per
rule, with their ratio."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from report.output import md_table

PLAN_GOAL = 0.30    # the plan within ±30 % of measured per rule


def _s(x) -> str:
    return "–" if pd.isna(x) else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def per_rule(cost: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, measured wall and CPU seconds, peak memory, the plan's jobs and seconds."""
    measured = cost.groupby("rule").agg(jobs=("s", "size"), seconds=("s", "sum"), cpu_seconds=("cpu_time", "sum"),
                                        max_rss_mb=("max_rss", "max"))
    planned = plan.groupby("rule").agg(planned_jobs=("jobs", "sum"), steps=("steps", "sum"),
                                       planned_seconds=("estimated_seconds", "sum"))
    table = measured.join(planned, how="outer").reset_index()
    table["measured / plan"] = table["seconds"] / table["planned_seconds"]
    return table


def per_task(cost: pd.DataFrame) -> pd.DataFrame:
    return (cost.groupby("task").agg(jobs=("s", "size"), seconds=("s", "sum"), cpu_seconds=("cpu_time", "sum"))
            .reset_index().sort_values("seconds", ascending=False))


def section(tables: dict, out: Path) -> list[str]:
    """Markdown lines; `tables` holds the DataFrames "cost", "cost_summary" and "plan" (empty when
    the profile has no benchmark files yet: no section). `out` is the report's directory (no figure here)."""
    cost, summary, plan = (tables.get(k, pd.DataFrame()) for k in ("cost", "cost_summary", "plan"))
    if cost.empty:
        return []
    lines = ["## What this report cost", ""]
    if summary.empty:
        return lines + ["_no cost summary in the tables_", ""]
    s = summary.iloc[0]
    lines += [f"Wall time {_s(s['wall_seconds'])} s over {int(s['invocations'])} invocation(s) on "
              f"{int(s['cores'])} core(s) (each from Snakemake's start to its end, invocations that ran at "
              f"once counted once; the invocation that aggregates, up to its aggregation). The jobs held "
              f"their cores for {_s(s['held_core_seconds'])} core-seconds: "
              f"core occupancy {100 * s['core_occupancy']:.0f} % (how well the jobs were packed). Their "
              f"CPU time, as Snakemake's benchmark samples it, was {_s(s['busy_core_seconds'])} "
              f"core-seconds: core utilisation {100 * s['core_utilisation']:.0f} %, a lower bound (the "
              "benchmark samples a job every 30 s after its first 15 s and misses the rest of a long "
              "job's CPU time; Snakemake's own scheduling is not a job and is not counted). The plan "
              f"estimated {_s(s['planned_wall_seconds'])} s of wall time at perfect packing.",
              "",
              f"The longest chain of jobs took {_s(s['longest_chain_seconds'])} s: {s['longest_chain']}.",
              "", "Per rule, measured beside the plan (seconds are the jobs' summed wall time):", ""]
    rule = per_rule(cost, plan if not plan.empty else
                    pd.DataFrame(columns=["rule", "jobs", "steps", "estimated_seconds"]))
    outside = [f"{name} (plan {1 / x:.2f} × measured)" for name, x in zip(rule["rule"], rule["measured / plan"])
               if x == x and x > 0 and abs(1 / x - 1) > PLAN_GOAL]
    for col in ("seconds", "cpu_seconds", "max_rss_mb", "planned_seconds", "measured / plan"):
        rule[col] = rule[col].map(_s)
    lines += [md_table(rule), "",
              f"The plan's goal is ±{PLAN_GOAL:.0%} of measured per rule. One model for every rule: start-up and a "
              "setup a job, the final and self-tuning runs' own overhead a run, and the steps at the optimizer's "
              "seconds per step, pooled over every run the tables time. Its final and defaults rules (together: "
              "their runs' steps and their jobs' time outside them), precision (its factor) and steptime (the "
              "setup) are calibrated from these runs' own records; tune, tune_horizon, tune_repeat, stability, "
              "loop_options and baselines are predictions from them: "
              + (f"outside it: {', '.join(outside)}." if outside else "every rule is within it."),
              "", "Per task:", ""]
    task = per_task(cost[cost["task"] != ""])
    for col in ("seconds", "cpu_seconds"):
        task[col] = task[col].map(_s)
    return lines + [md_table(task), ""]
