"""The report's across-tasks section: a performance profile on steps to target, and each
optimizer's rank per task."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from report import stats, summary  # noqa: E402
from report.output import fmt, md_table, save  # noqa: E402
from report.steptime import baseline_name  # noqa: E402


def rank_table(summary: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    direction = runs.groupby("task")["direction"].first()
    ranks = {}
    for task, g in summary.groupby("task"):
        sign = 1 if direction[task] == "min" else -1
        ranks[task] = (g.set_index("optimizer")["_mean"] * sign).rank(method="min", na_option="bottom")
    r = pd.DataFrame(ranks)
    r["mean rank"] = r.mean(axis=1)
    r = r.sort_values("mean rank").reset_index().rename(columns={"index": "optimizer"})
    return r.map(lambda x: fmt(x, 3) if isinstance(x, float) else x)


def profile_figure(runs: pd.DataFrame, out: Path) -> str | None:
    steps = runs.assign(cost=runs["steps_to_target"].fillna(np.inf))
    costs = steps.groupby(["task", "optimizer"])["cost"].median().unstack("optimizer")
    if costs.shape[0] < 2:
        return None
    taus = np.logspace(0, 2, 60)
    rho = stats.performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for opt in rho.columns:
        ax.step(rho.index, rho[opt], where="post", label=opt)
    ax.set_xscale("log")
    ax.set_xlabel("τ (steps to target within a factor τ of the best)")
    ax.set_ylabel("share of tasks")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, ncol=2)
    ax.set_title("Performance profile (Dolan–Moré) on steps to target")
    return save(fig, out, "performance-profile")


def section(tables: dict, out: Path) -> list[str]:
    runs, steptime = tables["runs"], tables["steptime"]
    if runs.empty:
        return []
    lines = ["## Across tasks", ""]
    fig = profile_figure(runs, out)
    if fig:
        lines += [f"![performance profile]({fig})", ""]
    return lines + ["Rank of each optimizer's mean final metric per task (1 = best):", "",
                    md_table(rank_table(summary.table(runs, tables["tuning"], steptime), runs)), "",
                    f"In the per-task tables, *step / {baseline_name(steptime)}* is the step-time section's same-job ratio "
                    "where it measured the pair, otherwise (≈) the ratio of median step times in the "
                    "final runs, which ran in separate jobs.", ""]
