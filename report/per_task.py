"""The report's per-task sections: per task, the summary table of its final runs, the loss and
metric curves, and what else the task evaluates or draws (per-bucket losses, a path in the plane,
generated samples, a published trajectory beside ours)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from report import stats, summary  # noqa: E402
from report.output import fmt, md_table, save  # noqa: E402


def curves_figure(curves: pd.DataFrame, task: str, metric: str, out: Path) -> str:
    c = curves[curves.task == task]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, series, title in ((axes[0], "loss", "training loss"), (axes[1], metric, f"validation {metric}")):
        d = c[c.series == series]
        # the band computed here, vectorised over steps (the t interval of each step's mean)
        for opt, color in zip(sorted(d.optimizer.unique()), sns.color_palette("tab20", d.optimizer.nunique())):
            m = d[d.optimizer == opt].pivot_table(index="seed", columns="step", values="value", dropna=False)
            mean, lo, hi = stats.t_band(m.to_numpy())
            ax.plot(m.columns, mean, color=color, linewidth=1.2, label=opt)
            ax.fill_between(m.columns, lo, hi, color=color, alpha=0.2, linewidth=0)
        ax.legend(fontsize=7, ncol=2)
        ax.set_xlabel("step")
        positive = (d["value"] > 0).all() and len(d)
        if positive and d["value"].max() / max(d["value"].min(), 1e-300) > 100:
            ax.set_yscale("log")
        ax.set_title(f"{task}: {title} (mean, 95% CI over seeds)")
        ax.set_ylabel(series)
    return save(fig, out, f"curves-{task}")


def final_evals(curves: pd.DataFrame, task: str, exclude=("loss",)) -> pd.DataFrame:
    """Each evaluated series at each run's last evaluation, averaged over seeds: optimizer x series."""
    c = curves[(curves.task == task) & ~curves.series.isin(exclude) & (curves.step > 0)]
    if c.empty:
        return pd.DataFrame()
    last = c[c.step == c.groupby(["optimizer", "seed"]).step.transform("max")]
    return last.groupby(["optimizer", "series"]).value.mean().unstack("series")


def extras_lines(curves: pd.DataFrame, task: str, metric: str, out: Path) -> list[str]:
    """What the task evaluates besides its metric (per-bucket losses, modes covered, perplexity...)."""
    table = final_evals(curves, task, exclude=("loss", metric))
    if table.empty:
        return []
    lines = ["Other evaluated quantities at the end of the final runs (the validation split's, mean over seeds):", "",
             md_table(table.reset_index().map(lambda x: fmt(x) if isinstance(x, float) else x)), ""]
    buckets = [c for c in table.columns if c.startswith("loss_")]
    if buckets:
        d = table[buckets].reset_index().melt(id_vars="optimizer", var_name="bucket", value_name="loss")
        d["bucket"] = d["bucket"].str.removeprefix("loss_")
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        sns.barplot(data=d, x="optimizer", y="loss", hue="bucket", ax=ax)
        ax.tick_params(axis="x", rotation=45)
        ax.set_title(f"{task}: validation loss by id-frequency bucket (head = most frequent ids)")
        lines += [f"![buckets {task}]({save(fig, out, f'buckets-{task}')})", ""]
    return lines


def plane_layers(ax, plane: dict) -> None:
    """A task's reference layers in the plane (figures.json): contours, marked points, limits."""
    if "contour" in plane:
        c = plane["contour"]
        ax.contour(c["x"], c["y"], np.asarray(c["z"]), levels=15, colors="0.8", linewidths=0.6)
    for label, pts in pd.DataFrame(plane.get("points", []), columns=["x", "y", "label"]).groupby("label", sort=False):
        ax.scatter(pts.x, pts.y, marker="x", color="red", s=20, zorder=4, label=label)
    ax.set_xlim(*plane["xlim"])
    ax.set_ylim(*plane["ylim"])


def trajectory_lines(curves: pd.DataFrame, task: str, figure: dict, out: Path) -> list[str]:
    """Paths in the plane for tasks that evaluate a 2-D position (x, y): Rosenbrock's valley."""
    c = curves[(curves.task == task) & curves.series.isin(["x", "y"])]
    if c.series.nunique() < 2:
        return []
    first = c[c.seed == c.groupby("optimizer").seed.transform("min")]
    path = first.pivot_table(index=["optimizer", "step"], columns="series", values="value").reset_index()
    fig, ax = plt.subplots(figsize=(7, 5.2))
    sns.lineplot(data=path, x="x", y="y", hue="optimizer", sort=False, estimator=None, ax=ax, linewidth=1.1)
    start = path[path.step == path.step.min()]
    ax.scatter(start.x, start.y, color="k", s=15, zorder=3)
    if "plane" in figure:
        plane_layers(ax, figure["plane"])
    ax.set_title(f"{task}: paths of the first final seed (evaluated every few steps; start in black)")
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return [f"![trajectories {task}]({save(fig, out, f'trajectories-{task}')})", ""]


def samples_lines(samples: pd.DataFrame, task: str, figure: dict, out: Path) -> list[str]:
    """Points drawn from each trained model, one panel per optimizer, over the task's reference
    layers (the GAN's generated samples against the data's modes)."""
    s = samples[samples.task == task] if len(samples) else samples
    if s.empty:
        return []
    grid = sns.relplot(data=s, x="x", y="y", col="optimizer", col_wrap=6, s=4, linewidth=0, alpha=0.6,
                       height=2.0, aspect=1.0)
    grid.set_titles("{col_name}")
    if "plane" in figure:
        for ax in grid.axes.flat:
            plane_layers(ax, figure["plane"])
    marks = "; red crosses: " + ", ".join(sorted({p["label"] for p in figure.get("plane", {}).get("points", [])}))
    grid.figure.suptitle(f"{task}: {s.groupby('optimizer').size().iloc[0]} generated points at the end "
                         f"of the first final seed{marks if 'plane' in figure else ''}", y=1.02)
    return [f"![samples {task}]({save(grid.figure, out, f'samples-{task}')})", ""]


def printed_lines(runs: pd.DataFrame, curves: pd.DataFrame, task: str, figure: dict) -> list[str]:
    """A published trajectory (figures.json "printed") beside the first final seed's."""
    printed = figure.get("printed")
    if not printed:
        return []
    opt, series = printed["optimizer"], printed["series"]
    c = curves[(curves.task == task) & (curves.optimizer == opt) & (curves.series == series)]
    if c.empty:
        return []
    ours = c[c.seed == c.seed.min()].set_index("step").value
    lr = runs[(runs.task == task) & (runs.optimizer == opt)].lr.iloc[0]
    rows = [{"step": int(step), f"{printed['source']} prints {series}": fmt(x, 5),
             f"ours ({opt}, lr {lr:g}): {series}": fmt(float(ours[int(step)]), 5) if int(step) in ours else "–"}
            for step, x in sorted(printed["values"].items(), key=lambda kv: int(kv[0]))]
    return [printed["note"], "", md_table(pd.DataFrame(rows)), ""]


def split_words(runs: pd.DataFrame) -> str:
    """Where the task's numbers are measured (see the report's Evaluation section)."""
    if "metric_split" not in runs:
        return ""
    if runs.metric_split.iloc[0] != "test":
        return "The final metric is the objective at the end of each run (no sample to hold out)."
    n = runs.test_n.dropna()
    return (f"The final metric is the held-out test split's ({fmt(int(n.iloc[0])) if len(n) else '–'} examples; "
            f"standard error of one run's value {fmt(float(runs.test_se.median()), 2)}, the median over runs); "
            f"the curves and the steps to target are the validation split's, which tuning selected on.")


def section(tables: dict, out: Path) -> list[str]:
    runs, curves = tables["runs"], tables["curves"]
    if runs.empty:
        return []
    lines = []
    for task, g in summary.table(runs, tables["tuning"], tables["steptime"]).groupby("task"):
        r = runs[runs.task == task]
        metric, direction, target = r["metric"].iloc[0], r["direction"].iloc[0], r["target"].iloc[0]
        better = "lower" if direction == "min" else "higher"
        lines += [f"## Task `{task}`", "",
                  f"Metric: {metric} ({better} is better), target {fmt(float(target))}; "
                  f"{int(r['n_params'].iloc[0])} parameters; data hash `{r['data_hash'].iloc[0]}`; "
                  f"{len(r.seed.unique())} seeds. {split_words(r)}", "",
                  # a task's table has its own metric's column; the others are empty here
                  md_table(g.drop(columns=["task", "_mean"]).dropna(axis=1, how="all")), "",
                  f"![curves {task}]({curves_figure(curves, task, metric, out)})", ""]
        lines += extras_lines(curves, task, metric, out)
        figure = tables["figures"].get(task, {})
        lines += trajectory_lines(curves, task, figure, out)
        lines += samples_lines(tables["samples"], task, figure, out)
        lines += printed_lines(runs, curves, task, figure)
    return lines
