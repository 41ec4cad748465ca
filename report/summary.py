"""One row per task × optimizer of the final runs: what the across-tasks and the per-task sections show."""
from __future__ import annotations

import pandas as pd

from report import stats
from report.output import fmt
from report.steptime import baseline_name


def step_ratio(runs: pd.DataFrame, steptime: pd.DataFrame, task: str, opt: str) -> str:
    """Step time over the baseline's (the profile's `steptime.baseline`): the step-time job's same-process ratio where it measured this pair;
    otherwise the ratio of median step times in the final runs (separate jobs), marked ≈."""
    same_job = steptime[(steptime.task == task) & (steptime.optimizer == opt)] if len(steptime) else []
    if len(same_job):
        return fmt(float(same_job["ratio_to_baseline"].iloc[0]), 3)
    baseline = steptime["baseline"].iloc[0] if len(steptime) else None   # the profile's, one per run
    medians = runs[runs.task == task].groupby("optimizer")["step_time_median"].median()
    if baseline not in medians or not medians[baseline] > 0:
        return "–"
    return "≈" + fmt(float(medians[opt] / medians[baseline]), 3)


def table(runs: pd.DataFrame, tuning: pd.DataFrame, steptime: pd.DataFrame) -> pd.DataFrame:
    """The shown columns, and `_mean` (the mean final metric) that ranks the optimizers."""
    rows = []
    for (task, opt), g in runs.groupby(["task", "optimizer"], sort=True):
        ok = g[~g["diverged"]]
        mean, lo, hi = stats.t_interval(ok["final_metric"].tolist())
        reached = g["steps_to_target"].dropna()
        trials = tuning[(tuning.task == task) & (tuning.optimizer == opt)] if len(tuning) else tuning
        edges = set(", ".join(trials["edge"].dropna().astype(str)).split(", ")) if "edge" in trials else set()
        rows.append({
            "task": task, "optimizer": opt,
            "lr": fmt(g["lr"].iloc[0], 3) + (" (edge)" if "lr" in edges else ""),
            # tuned with lr where the entry's search space has it; the entry's default otherwise
            "weight decay": (fmt(g["weight_decay"].iloc[0], 3) + (" (edge)" if "weight_decay" in edges else "")
                             if "weight_decay" in g else "–"),
            f"final {g['metric'].iloc[0]} (95% CI)": f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]",
            "diverged": f"{int(g['diverged'].sum())}/{len(g)}",
            "steps to target": f"{fmt(float(reached.median()))} ({len(reached)}/{len(g)})" if len(reached) else f"– (0/{len(g)})",
            "s to target": fmt(float(g["seconds_to_target"].dropna().median())) if len(reached) else "–",
            "step time (µs)": fmt(float(g["step_time_median"].median()) * 1e6, 3),
            f"step / {baseline_name(steptime)}": step_ratio(runs, steptime, task, opt),
            "state B/param": fmt(float(g["state_bytes_per_param"].iloc[0]), 4),
            "_mean": mean,
        })
    return pd.DataFrame(rows)
