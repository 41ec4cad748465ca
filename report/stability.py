"""The report's stability section, from stability.csv: loss × c against learning rate × c."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from report import stats  # noqa: E402
from report.output import fmt, md_table, save  # noqa: E402


LEARNED = 0.1   # "learned": the final metric beats the initial one by 10 % of the initial's magnitude


def learned(st: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame) -> pd.Series:
    """Per stability row: it did not diverge and its final metric beat the task's initial metric
    (the curves table's first evaluation, step 0, the same initial model) by LEARNED × |initial|
    in the task's direction. Without an initial metric, not diverging is all that can be said."""
    ok = ~st.diverged
    if runs.empty or curves.empty:
        return ok
    out = ok.copy()
    for task, idx in st.groupby("task").groups.items():
        r = runs[runs.task == task]
        first = curves[(curves.task == task) & (curves.step == 0)]
        if r.empty or first.empty:
            continue
        first = first[first.series == r.metric.iloc[0]]
        if first.empty:
            continue
        init = float(first.value.median())
        sign = 1 if r.direction.iloc[0] == "min" else -1
        out.loc[idx] = ok.loc[idx] & (sign * (init - st.loc[idx, "final_metric"]) >= LEARNED * abs(init))
    return out


def section(tables: dict, out: Path) -> list[str]:
    st = tables["stability"]
    if not len(st):
        return []
    lines = ["## Stability: loss × c against learning rate × c", "",
             "At the tuned learning rate, one sweep multiplies the loss by c (lr fixed), the other the "
             "learning rate by c (loss fixed). *Stable* counts the decades of c over which the run did not "
             "diverge and learned: its final metric beat the initial one (the first evaluation of the final "
             f"runs) by {LEARNED:.0%} of the initial's magnitude; *invariant* counts those over which the loss curve stayed within 1e-3 (relative) of "
             "the c = 1 curve. *loss×c ≡ lr×c* is the largest relative gap between the two sweeps' loss "
             "curves at the same c: 0 for SGD, whose update is linear in the gradient.", ""]
    st = st.assign(_learned=learned(st, tables.get("runs", pd.DataFrame()), tables.get("curves", pd.DataFrame())))
    rows = []
    for (task, opt, axis), g in st.groupby(["task", "optimizer", "axis"]):
        rows.append({"task": task, "optimizer": opt, "axis": f"{axis} × c",
                     "stable (decades)": fmt(stats.stable_decades(g.scale, g._learned), 3),
                     "invariant (decades)": fmt(stats.stable_decades(g.scale, g.gap_to_unscaled < 1e-3), 3),
                     "loss×c ≡ lr×c (max gap)": fmt(float(g.gap_to_lr_scaled.max()), 2) if axis == "loss" else ""})
    lines += [md_table(pd.DataFrame(rows)), ""]
    for task, g in st.drop(columns="_learned").groupby("task"):
        g = g.assign(**{"final metric": g.final_metric.where(~g.diverged)})
        grid = sns.relplot(data=g, x="scale", y="final metric", hue="optimizer", col="axis", kind="line",
                           marker="o", height=3.4, aspect=1.3, facet_kws={"sharey": True})
        grid.set(xscale="log")
        if (g["final metric"].dropna() > 0).all():
            grid.set(yscale="log")
        grid.figure.suptitle(f"{task}: final metric against c (gaps: diverged)", y=1.03)
        lines += [f"![stability {task}]({save(grid.figure, out, f'stability-{task}')})", ""]
    return lines
