"""The report's mixed-precision section and its claims, from the precision tables alone.

`tables["precision"]`: one row per run (workflows.engine.precision.table_rows): task, optimizer, seed,
precision, loss_scaling, scale, final_metric, diverged, skipped_steps, underflow_share,
overflow_share, ... `tables["precision_scale"]`: the dynamic scale's trajectory (scale_rows).

A static scale is *safe* for an optimizer on a task when no seed diverged and the 95 % bootstrap
interval of its mean final metric overlaps the fp32 runs' interval (with one seed the intervals are
points: the claims leave such a task × optimizer out, and say inconclusive when nothing is left).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from report import stats  # noqa: E402
from report.output import claim_row, save, short  # noqa: E402

REFERENCES = {"fp32": "-", "bf16": "--", "fp16 dynamic": ":", "fp16 unscaled": "-."}


# where the expectation comes from: mixed-precision training practice
SOURCE = "Micikevicius et al. 2018; torch.amp"


def _pow2(c: float) -> str:
    e = math.log2(c)
    return f"2^{e:g}" if e == int(e) else f"{c:g}"


def variant(df: pd.DataFrame) -> pd.Series:
    """The reference a run belongs to: fp32, bf16, fp16 unscaled, fp16 dynamic, or fp16 static."""
    return df.precision.where(df.loss_scaling == "none", "fp16 " + df.loss_scaling).replace({"fp16": "fp16 unscaled"})


def ci(g: pd.DataFrame) -> tuple[float, float, float]:
    """(mean, low, high) of the final metric over the seeds; NaNs if any seed diverged."""
    if g.empty or g.diverged.any():
        return (math.nan,) * 3
    return stats.bootstrap_ci(g.final_metric.tolist())


def overlaps(a, b) -> bool:
    return all(map(math.isfinite, a + b)) and not (a[2] < b[1] or b[2] < a[1])


def safe_scales(g: pd.DataFrame) -> list[float]:
    """The static scales of one task × optimizer whose final metric is within fp32's (see above)."""
    ref = ci(g[variant(g) == "fp32"])
    static = g[g.loss_scaling == "static"]
    return [c for c, s in static.groupby("scale") if overlaps(ci(s), ref)]


def window(scales: list[float], grid: list[float]) -> str:
    """The safe scales as ranges of the grid: '2^0–2^16', '2^8, 2^24', or 'none'."""
    if not scales:
        return "none"
    grid, parts, run = sorted(grid), [], []
    for c in grid:
        if c in scales:
            run.append(c)
        elif run:
            parts.append(run)
            run = []
    parts += [run] if run else []
    return ", ".join(_pow2(r[0]) if len(r) == 1 else f"{_pow2(r[0])}–{_pow2(r[-1])}" for r in parts)


def summary(pr: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (task, opt), g in pr.groupby(["task", "optimizer"]):
        v = variant(g)
        row = {"task": task, "optimizer": opt}
        for name in ("fp32", "bf16", "fp16 unscaled", "fp16 dynamic"):
            m, lo, hi = ci(g[v == name])
            row[name] = f"{short(m)} [{short(lo)}, {short(hi)}]" if math.isfinite(m) else "diverged"
        grid = sorted(g.loc[g.loss_scaling == "static", "scale"].unique())
        row["safe static scales"] = window(safe_scales(g), grid)
        row["skipped (dynamic)"] = short(float(g.loc[v == "fp16 dynamic", "skipped_steps"].mean()))
        row["underflow, fp16 unscaled"] = short(float(g.loc[v == "fp16 unscaled", "underflow_share"].mean()), 2)
        row["underflow, bf16"] = short(float(g.loc[v == "bf16", "underflow_share"].mean()), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def metric_figure(pr: pd.DataFrame, task: str, out: Path) -> str:
    g = pr[pr.task == task]
    metric = g.metric.iloc[0]
    opts = sorted(g.optimizer.unique())
    fig, axes = plt.subplots(1, len(opts), figsize=(3.2 * len(opts), 3.2), sharey=True, squeeze=False)
    for ax, opt in zip(axes[0], opts):
        h = g[g.optimizer == opt]
        v = variant(h)
        static = h[h.loss_scaling == "static"].assign(final=lambda d: d.final_metric.where(~d.diverged))
        sns.lineplot(data=static, x="scale", y="final", marker="o", errorbar=("ci", 95), ax=ax, color="C0",
                     label="fp16 static", seed=0)
        for i, (name, style) in enumerate(REFERENCES.items()):
            m = ci(h[v == name])[0]
            if math.isfinite(m):
                ax.axhline(m, ls=style, color=f"C{i + 1}", label=name)
        ax.set_xscale("log", base=2)
        ax.set(title=opt, xlabel="static loss scale c", ylabel=metric)
        ax.legend(fontsize=7)
    fig.suptitle(f"{task}: final {metric} against the static scale (gaps: diverged)", y=1.03)
    return save(fig, out, f"precision-{task}")


def shares_figure(pr: pd.DataFrame, task: str, out: Path) -> str:
    g = pr[(pr.task == task) & (pr.loss_scaling == "static")]
    long = g.melt(id_vars=["optimizer", "scale", "seed"], value_vars=["underflow_share", "overflow_share"],
                  var_name="share", value_name="entries")
    grid = sns.relplot(data=long, x="scale", y="entries", hue="optimizer", col="share", kind="line", marker="o",
                       height=3.2, aspect=1.3, errorbar=None)
    grid.set(xscale="log")
    grid.figure.suptitle(f"{task}: share of gradient entries lost in fp16, against c (mean over probes)", y=1.04)
    return save(grid.figure, out, f"precision-shares-{task}")


def scale_figure(sc: pd.DataFrame, task: str, out: Path) -> str | None:
    g = sc[sc.task == task]
    if g.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for (opt, seed), h in g.groupby(["optimizer", "seed"]):
        ax.step(h.step, h.scale, where="post", color=f"C{sorted(g.optimizer.unique()).index(opt)}",
                label=opt if seed == g[g.optimizer == opt].seed.min() else None)
    ax.set_yscale("log", base=2)
    ax.set(xlabel="step", ylabel="dynamic scale", title=f"{task}: GradScaler's scale (every seed)")
    ax.legend(fontsize=7)
    return save(fig, out, f"precision-scale-{task}")


def section(tables: dict[str, pd.DataFrame], out: Path) -> list[str]:
    pr = tables.get("precision", pd.DataFrame())
    if pr.empty:
        return []
    sc = tables.get("precision_scale", pd.DataFrame())
    lines = ["## Mixed precision: fp16 and bf16, static against dynamic loss scaling", "",
             "At the tuned hyperparameters, each optimizer trains with the forward under autocast (fp32 master "
             "weights and optimizer state): bf16 without loss scaling, fp16 without, fp16 with a static scale c "
             "(loss × c, gradients ÷ c, a step with a non-finite gradient skipped) and fp16 with dynamic scaling "
             "(torch.amp.GradScaler's defaults: 2^16 to start, halved on inf, doubled after 2000 clean steps). "
             "Final metric: mean [95 % bootstrap interval] over seeds. A static scale is *safe* when no seed "
             "diverged and its interval overlaps fp32's. *Underflow*: the share of gradient entries exactly 0 "
             "where the fp32 gradient of the same batch is not (probed every k steps); *overflow*: inf or NaN.",
             "", summary(pr).to_markdown(index=False, disable_numparse=True), ""]
    for task in sorted(pr.task.unique()):
        lines += [f"![precision {task}]({metric_figure(pr, task, out)})", "",
                  f"![precision shares {task}]({shares_figure(pr, task, out)})", ""]
        if not sc.empty and (path := scale_figure(sc, task, out)):
            lines += [f"![dynamic scale {task}]({path})", ""]
    return lines


def no_fixed_scale_is_safe(pr: pd.DataFrame) -> dict:
    claim = "In fp16, no fixed loss scale is safe for every optimizer"
    src = SOURCE
    per_task, empty = [], []
    for task, g in pr.groupby("task"):
        if g.seed.nunique() < 2:
            per_task.append(f"{task}: one seed, no interval to compare")
            continue
        # a pair whose fp32 reference diverged has no interval to be safe against: left out
        lost = [o for o, h in g.groupby("optimizer") if h[variant(h) == "fp32"].diverged.any()]
        g = g[~g.optimizer.isin(lost)]
        if g.empty:
            per_task.append(f"{task}: fp32 diverged for every optimizer")
            continue
        grid = sorted(g.loc[g.loss_scaling == "static", "scale"].unique())
        common = set(grid)
        for _, h in g.groupby("optimizer"):
            common &= set(safe_scales(h))
        empty.append(not common)
        per_task.append(f"{task} ({g.optimizer.nunique()} optimizers): safe for all {window(sorted(common), grid)}"
                        + (f" (fp32 diverged, left out: {', '.join(lost)})" if lost else ""))
    verdict = ("inconclusive" if not empty or (any(empty) and not all(empty))
               else "reproduced" if all(empty) else "not reproduced")
    return claim_row(claim, src, verdict, "; ".join(per_task))


def _matches(pr: pd.DataFrame, name: str, claim: str) -> dict:
    """`name` runs against fp32: a pair matches when the intervals overlap; the claim fails on a
    pair where `name` is separated and worse (or diverged). Pairs with one seed are left out."""
    src = SOURCE
    matched, compared, worse, single, lost = 0, 0, [], [], []
    for (task, opt), g in pr.groupby(["task", "optimizer"]):
        if g.seed.nunique() < 2:
            single.append(f"{task}/{opt}")
            continue
        if g[variant(g) == "fp32"].diverged.any():   # no reference interval
            lost.append(f"{task}/{opt}")
            continue
        compared += 1
        v = variant(g)
        ref, got = ci(g[v == "fp32"]), ci(g[v == name])
        lower = g.direction.iloc[0] == "min"
        if overlaps(ref, got):
            matched += 1
            continue
        gap = got[0] - ref[0] if math.isfinite(got[0]) else math.inf * (1 if lower else -1)
        if (gap > 0) == lower:
            worse.append(f"{task}/{opt} {short(got[0])} vs fp32 {short(ref[0])}")
    evidence = f"{matched}/{compared} task × optimizer pairs within fp32's interval"
    evidence += f"; worse: {', '.join(worse)}" if worse else ""
    evidence += f"; one seed, left out: {', '.join(single)}" if single else ""
    evidence += f"; fp32 diverged, left out: {', '.join(lost)}" if lost else ""
    if name == "bf16":
        u_bf, u_fp = (float(pr.loc[variant(pr) == n, "underflow_share"].mean()) for n in ("bf16", "fp16 unscaled"))
        evidence += f"; mean underflow share bf16 {short(u_bf, 2)}, fp16 unscaled {short(u_fp, 2)}"
    verdict = ("inconclusive" if not compared else "not reproduced" if worse
               else "reproduced" if matched == compared else "inconclusive")
    return claim_row(claim, src, verdict, evidence)


def claims(tables: dict[str, pd.DataFrame]) -> list[dict]:
    pr = tables.get("precision", pd.DataFrame())
    names = ["In fp16, no fixed loss scale is safe for every optimizer", "Dynamic loss scaling matches fp32",
             "bf16 needs no loss scaling"]
    if pr.empty:
        return [claim_row(c, SOURCE, "not measured", "no precision runs in this profile") for c in names]
    return [no_fixed_scale_is_safe(pr), _matches(pr, "fp16 dynamic", names[1]), _matches(pr, "bf16", names[2])]
