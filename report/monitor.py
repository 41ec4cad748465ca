"""The report's training-monitor section, from monitor.csv: gradient and update norms, first
moments, and where each optimizer's moments come from."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from report.output import md_table, save  # noqa: E402


def section(tables: dict, out: Path) -> list[str]:
    mon = tables["monitor"]
    if not len(mon):
        return []
    lines = ["## Training monitor", "",
             "Every few steps of the final runs: gradient norm, update norm ‖θₜ − θₜ₋₁‖ over weight norm, "
             "and the mean |first moment| where the optimizer keeps one (mean over parameter groups and "
             "seeds).", ""]
    cols = {"grad_norm": "gradient norm", "update_to_weight": "update / weight", "m_abs_mean": "mean |m|"}
    for task, g in mon.groupby("task"):
        per_step = g.groupby(["optimizer", "seed", "step"])[list(cols)].mean().reset_index()
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        for ax, (col, title) in zip(axes, cols.items()):
            d = per_step.dropna(subset=[col])
            if len(d):
                sns.lineplot(data=d, x="step", y=col, hue="optimizer", errorbar=None, ax=ax, linewidth=1)
                if (d[col] > 0).all():
                    ax.set_yscale("log")
            ax.set_title(f"{task}: {title}")
            ax.set_ylabel(title)
            if ax.get_legend() and ax is not axes[-1]:
                ax.get_legend().remove()
        lines += [f"![monitor {task}]({save(fig, out, f'monitor-{task}')})", ""]
    if {"m_from", "v_from"} <= set(mon.columns):
        # what each optimizer's moment statistics are read from, or why it has none
        src = (mon.groupby("optimizer")[["m_from", "v_from"]].agg(lambda s: " / ".join(sorted(set(map(str, s.dropna())))))
               .reset_index().rename(columns={"m_from": "first moment from",
                                              "v_from": "second moment from"}))
        lines += ["Where each optimizer's moment statistics come from (its own state, dequantised or "
                  "reconstructed where needed), or why it has none:", "", md_table(src), ""]
    return lines
