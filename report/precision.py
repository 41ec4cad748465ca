"""The report's mixed-precision section and its claims, from the precision tables alone.

`tables["precision"]`: one row per run (workflows.engine.precision.table_rows): task, optimizer, seed,
loss_scale, precision, loss_scaling, scale, final_metric, diverged, skipped_steps, underflow_share,
overflow_share, growth_interval, growths, backoffs, ... `tables["precision_scale"]`: the dynamic
scale's trajectory (scale_rows). Rows at loss_scale 1 (a table without the column has only those)
are the study; the others are the stress condition (loss × s < 1), tested on their own
(`stress_is_rescued`) against fp32 at the same s.

A static scale is *safe* for an optimizer on a task when no seed diverged and it is non-inferior to
fp32: the one-sided paired t-test over the seeds both ran rejects "worse than fp32 by δ or more"
at α = 0.05, δ = 1 % of fp32's mean final metric (report.verdicts). One-sided, so that a scale
that trains better than fp32 counts as safe. Under MIN_SEEDS paired seeds the claims decide nothing.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from report import stats, verdicts  # noqa: E402
from report.output import save, short  # noqa: E402

REFERENCES = {"fp32": "-", "bf16": "--", "fp16 dynamic": ":", "fp16 unscaled": "-."}


STRESS_ARMS = ("fp32", "fp16 unscaled", "fp16 dynamic")


def _pow2(c: float) -> str:
    e = math.log2(c)
    return f"2^{e:g}" if e == int(e) else f"{c:g}"


def loss_scales(df: pd.DataFrame) -> pd.Series:
    """Each run's loss × s: 1 outside the stress condition (and in tables from before it)."""
    return df.loss_scale if "loss_scale" in df else pd.Series(1.0, index=df.index)


def unstressed(df: pd.DataFrame) -> pd.DataFrame:
    return df[loss_scales(df) == 1.0]


def variant(df: pd.DataFrame) -> pd.Series:
    """The reference a run belongs to: fp32, bf16, fp16 unscaled, fp16 dynamic, or fp16 static."""
    return df.precision.where(df.loss_scaling == "none", "fp16 " + df.loss_scaling).replace({"fp16": "fp16 unscaled"})


def ci(g: pd.DataFrame) -> tuple[float, float, float]:
    """(mean, low, high) of the final metric over the seeds (95 % t interval); NaNs if any seed diverged."""
    if g.empty or g.diverged.any():
        return (math.nan,) * 3
    return stats.t_interval(g.final_metric.tolist())


def by_seed(g: pd.DataFrame) -> pd.Series:
    """Final metric per seed, NaN where the seed diverged."""
    g = g.set_index("seed")
    return g.final_metric.where(~g.diverged).astype(float)


def non_inferiority_p(g: pd.DataFrame, ref: pd.DataFrame) -> float:
    """One-sided paired p of H0 "g is worse than the fp32 runs `ref` by the margin δ (1 % of fp32's
    mean) or more"; 1 when a seed of g diverged (a diverged run is not safe), NaN under 2 pairs."""
    if g.diverged.any():
        return 1.0
    a, b = by_seed(g), by_seed(ref)
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    if len(joined) < 2:
        return math.nan
    lower = g.direction.iloc[0] == "min"
    delta = verdicts.margin_of(float(joined.b.mean()))
    return stats.one_sided_p((joined.a - joined.b).to_numpy(), delta if lower else -delta, greater=not lower)


def inferiority_p(g: pd.DataFrame, ref: pd.DataFrame) -> float:
    """One-sided paired p of H0 "g is not worse than fp32 by more than δ"; 0 when a seed of g
    diverged where fp32 did not, NaN under 2 pairs."""
    if g.diverged.any():
        return 0.0
    joined = pd.concat([by_seed(g).rename("a"), by_seed(ref).rename("b")], axis=1, join="inner").dropna()
    if len(joined) < 2:
        return math.nan
    lower = g.direction.iloc[0] == "min"
    delta = verdicts.margin_of(float(joined.b.mean()))
    return stats.one_sided_p((joined.a - joined.b).to_numpy(), delta if lower else -delta, greater=lower)


def safe_scales(g: pd.DataFrame) -> list[float]:
    """The static scales of one task × optimizer that are safe: non-inferior to fp32 (see above)."""
    ref = g[variant(g) == "fp32"]
    static = g[g.loss_scaling == "static"]
    return [c for c, s in static.groupby("scale") if non_inferiority_p(s, ref) < stats.ALPHA]


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
        row["growths / backoffs (dynamic)"] = _moves(g[v == "fp16 dynamic"])
        row["underflow, fp16 unscaled"] = short(float(g.loc[v == "fp16 unscaled", "underflow_share"].mean()), 2)
        row["underflow, bf16"] = short(float(g.loc[v == "bf16", "underflow_share"].mean()), 2)
        rows.append(row)
    return pd.DataFrame(rows)


def _moves(g: pd.DataFrame) -> str:
    """The dynamic scale's doublings and halvings, mean over seeds ('–' in tables from before them)."""
    if "growths" not in g or g.empty:
        return "–"
    return f"{short(float(g.growths.mean()))} / {short(float(g.backoffs.mean()))}"


def growth_text(pr: pd.DataFrame) -> str:
    """The dynamic scaler's growth interval as the tables record it."""
    if "growth_interval" not in pr:
        return "2000 clean steps (GradScaler's default)"
    intervals = " or ".join(f"{n:g}" for n in sorted(pr.growth_interval.unique()))
    return f"{intervals} clean steps (the profile's growth_interval)"


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
    g = sc[sc.task == task].assign(loss_scale=lambda d: loss_scales(d))
    if g.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for (opt, s, seed), h in g.groupby(["optimizer", "loss_scale", "seed"]):
        name = opt if s == 1 else f"{opt}, loss × {_pow2(s)}"
        first = seed == g[(g.optimizer == opt) & (g.loss_scale == s)].seed.min()
        ax.step(h.step, h.scale, where="post", color=f"C{sorted(g.optimizer.unique()).index(opt)}",
                ls="-" if s == 1 else "--", label=name if first else None)
    ax.set_yscale("log", base=2)
    ax.set(xlabel="step", ylabel="dynamic scale", title=f"{task}: GradScaler's scale (every seed)")
    ax.legend(fontsize=7)
    return save(fig, out, f"precision-scale-{task}")


def section(tables: dict[str, pd.DataFrame], out: Path) -> list[str]:
    everything = tables.get("precision", pd.DataFrame())
    if everything.empty:
        return []
    pr = unstressed(everything)
    sc = tables.get("precision_scale", pd.DataFrame())
    lines = ["## Mixed precision: fp16 and bf16, static against dynamic loss scaling", "",
             "At the tuned hyperparameters, each optimizer trains with the forward under autocast (fp32 master "
             "weights and optimizer state): bf16 without loss scaling, fp16 without, fp16 with a static scale c "
             "(loss × c, gradients ÷ c, a step with a non-finite gradient skipped) and fp16 with dynamic scaling "
             f"(torch.amp.GradScaler: 2^16 to start, halved on inf, doubled after {growth_text(pr)}). "
             "Final metric: mean [95 % t interval] over seeds. A static scale is *safe* when no seed "
             "diverged and it is non-inferior to fp32 (one-sided paired t over the seeds, p < 0.05, margin "
             "δ = 1 % of fp32's mean): a scale that trains better counts as safe. *Underflow*: the share of gradient entries exactly 0 "
             "where the fp32 gradient of the same batch is not (probed every k steps); *overflow*: inf or NaN.",
             "", summary(pr).to_markdown(index=False, disable_numparse=True), ""]
    for task in sorted(pr.task.unique()):
        lines += [f"![precision {task}]({metric_figure(pr, task, out)})", "",
                  f"![precision shares {task}]({shares_figure(pr, task, out)})", ""]
        if not sc.empty and (path := scale_figure(sc, task, out)):
            lines += [f"![dynamic scale {task}]({path})", ""]
    return lines + stress_section(everything)


def stress_section(pr: pd.DataFrame) -> list[str]:
    """The stress condition's table: per task × optimizer × arm at loss × s, the final metric, its
    paired difference from fp32 at the same s, the underflow share and the dynamic scale's moves."""
    st = stressed(pr)
    if st.empty:
        return []
    rows = []
    for (task, opt, s), g in st.groupby(["task", "optimizer", "loss_scale"]):
        v = variant(g)
        ref = g[v == "fp32"]
        for name in STRESS_ARMS:
            h = g[v == name]
            m, lo, hi = ci(h)
            rows.append({"task": task, "optimizer": opt, "loss × s": _pow2(s), "arm": name,
                         "final": f"{short(m)} [{short(lo)}, {short(hi)}]" if math.isfinite(m) else
                         f"diverged on {int(h.diverged.sum())}/{len(h)} seeds",
                         "− fp32 at s": "–" if name == "fp32" else _paired_text(by_seed(h), by_seed(ref)),
                         "underflow (mean, min over runs)": "–" if name == "fp32" else
                         f"{short(float(h.underflow_share.mean()), 2)}, {short(float(h.underflow_share.min()), 2)}",
                         "growths / backoffs": _moves(h) if name == "fp16 dynamic" else "–"})
    return ["### The stress condition: fp16 below its range", "",
            f"The loss × s < 1 in fp32, fp16 unscaled and fp16 dynamic, for {', '.join(sorted(st.optimizer.unique()))} "
            "(the optimizers whose update is invariant to the loss's scale once eps is scaled with it; s a power of 2, eps × s, "
            "so that its update is the same as at 1 in exact arithmetic and fp32 trains as at 1), so that the "
            "backward's values fall below fp16's smallest subnormal 2^-24, as the activation gradients of "
            "Micikevicius et al. 2018, §3.2 did. A static scale c under s is the arithmetic of c · s at scale 1 "
            "(powers of 2: exact), so the static grid above is the stress condition's static answer at c / s "
            "(c = 1/s replays fp16 unscaled at 1) and is not run again. Paired differences: mean [95 % t "
            "interval] over the seeds both ran.",
            "", pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True), ""]


def _paired_text(a: pd.Series, b: pd.Series) -> str:
    t = stats.paired(a, b)
    return f"{short(t.diff)} [{short(t.low)}, {short(t.high)}] ({t.n} seeds)" if t.n else "–"


def _seeds(pr: pd.DataFrame) -> int:
    return int(pr.groupby(["task", "optimizer", "precision", "loss_scaling", "scale"], dropna=False).seed.nunique().min())


FIXED_TESTED = ("some static scale of the grid is safe (non-inferior to fp32, one-sided paired t, "
                f"{verdicts.margin_text('fp32')}) for every optimizer of a task: intersection-union over "
                "optimizers and tasks, Bonferroni over the grid's scales; against: every scale worse than fp32 "
                "beyond δ for some optimizer, Bonferroni over optimizers and tasks; Holm")


def fixed_scale_is_safe(pr: pd.DataFrame) -> dict:
    claim = "A constant loss scale, chosen empirically, trains fp16 to fp32's accuracy (factors 8 to 32K worked)"
    src = "Micikevicius et al. 2018 (Mixed Precision Training), §3.2"
    tested = FIXED_TESTED
    per_task, found = [], []
    for task, g in pr.groupby("task"):
        lost = [o for o, h in g.groupby("optimizer") if h[variant(h) == "fp32"].diverged.any()]
        g = g[~g.optimizer.isin(lost)]
        grid = sorted(g.loc[g.loss_scaling == "static", "scale"].unique())
        if g.empty or not grid:
            per_task.append(f"{task}: no fp32 reference or no static scale")
            continue
        # a scale is safe for all when its worst optimizer's p is below α (intersection-union)
        worst = {c: max(non_inferiority_p(h[(h.loss_scaling == "static") & (h.scale == c)], h[variant(h) == "fp32"]) for _, h in g.groupby("optimizer"))
                 for c in grid}
        best_c = min(worst, key=lambda c: (worst[c], c))
        p = min(1.0, worst[best_c] * len(grid))
        # refuted when every scale has an optimizer worse than fp32 beyond δ (Bonferroni over optimizers)
        k = g.optimizer.nunique()
        bad = max(min(min(1.0, k * inferiority_p(h[(h.loss_scaling == "static") & (h.scale == c)], h[variant(h) == "fp32"]))
                      for _, h in g.groupby("optimizer")) for c in grid)
        n = _seeds(g)
        found.append((n, p, bad))
        per_task.append(f"{task} ({g.optimizer.nunique()} optimizers, {n} seeds): best common scale {_pow2(best_c)}, "
                        f"p = {p:.3g} (Bonferroni × {len(grid)}); every scale worse than fp32 for some optimizer: p = {bad:.3g}" + (f"; fp32 diverged, left out: {', '.join(lost)}" if lost else "")
                        + (f"; not in the test (n < {verdicts.MIN_SEEDS})" if n < verdicts.MIN_SEEDS else ""))
    tested_tasks = [(p, bad) for n, p, bad in found if n >= verdicts.MIN_SEEDS]
    if not found or not tested_tasks:
        return verdicts.row(claim, src, tested, verdicts.FEW if found else "not measured", "; ".join(per_task))
    # reproduced on every task (intersection-union: the largest p); refuted on some task (Bonferroni)
    tests = (("safe on every task", max(p for p, _ in tested_tasks), "reproduced"),
             ("unsafe on some task", min(1.0, min(bad for _, bad in tested_tasks) * len(tested_tasks)), "not reproduced"))
    return verdicts.row(claim, src, tested, "inconclusive", "; ".join(per_task), tests)


def _matches(pr: pd.DataFrame, name: str, claim: str, src: str, tested: str | None = None) -> dict:
    """`name` runs against fp32 per task × optimizer: TOST within δ on every pair (intersection-union)
    reproduces the claim; a pair significantly different (the smallest paired p, Bonferroni over
    the pairs, then in the report's Holm family) beyond δ, or diverging where fp32 did not, refutes it."""
    tested = tested or _tested(name)
    tost, diff, lines, n_min, lost, diverged = [], [], [], math.inf, [], False
    for (task, opt), g in pr.groupby(["task", "optimizer"]):
        v = variant(g)
        ref, got = g[v == "fp32"], g[v == name]
        if ref.empty or got.empty or ref.diverged.any():
            lost.append(f"{task}/{opt}")
            continue
        # the seeds both ran (a diverged seed of `name` still counts: it is an outcome, not a gap)
        n_min = min(n_min, len(set(got.seed) & set(ref.seed)))
        if got.diverged.any():
            lines.append(f"{task}/{opt}: {name} diverged on {int(got.diverged.sum())}/{len(got)} seeds")
            tost.append(1.0)
            diverged = True
            continue
        d = (by_seed(got) - by_seed(ref)).dropna().to_numpy()
        delta = verdicts.margin_of(float(by_seed(ref).mean()))
        _, p_in, p_out = verdicts.within(d, 0.0, delta)
        tost.append(p_in)
        diff.append(p_out)   # "beyond the margin", the claim's negation
        lines.append(f"{task}/{opt}: {stats.paired(by_seed(got), by_seed(ref)).text(name, 'fp32')}; δ = {delta:.3g}, "
                     f"TOST p = {p_in:.3g}, beyond δ p = {p_out:.3g}")
    if name == "bf16":
        u_bf, u_fp = (float(pr.loc[variant(pr) == n, "underflow_share"].mean()) for n in ("bf16", "fp16 unscaled"))
        lines.append(f"mean underflow share bf16 {short(u_bf, 2)}, fp16 unscaled {short(u_fp, 2)}")
    lines += [f"no fp32 reference, left out: {', '.join(lost)}"] if lost else []
    evidence = "; ".join(lines)
    if not tost:
        return verdicts.row(claim, src, tested, "not measured", evidence)
    if n_min < verdicts.MIN_SEEDS:
        return verdicts.row(claim, src, tested, verdicts.FEW, evidence)
    if diverged:   # a seed diverged where fp32 did not: a flag, not a p
        return verdicts.row(claim, src, tested, "not reproduced", evidence)
    finite = [d for d in diff if math.isfinite(d)]
    # equivalent on every pair (intersection-union: the largest TOST p); beyond δ on some pair (Bonferroni)
    tests = (("TOST on every pair", max(tost), "reproduced"),
             ("beyond δ on some pair", min(1.0, min(finite) * len(diff)) if finite else math.nan, "not reproduced"))
    return verdicts.row(claim, src, tested, "inconclusive", evidence, tests)


def _tested(name: str) -> str:
    return (f"{name} equivalent to fp32 on every task × optimizer (TOST on paired seeds, intersection-union, "
            f"{verdicts.margin_text('fp32')}; against: a difference beyond δ on some pair, Bonferroni over the "
            "pairs; a seed diverging where fp32 did not refutes it), Holm")


CLAIMS = (("A constant loss scale, chosen empirically, trains fp16 to fp32's accuracy (factors 8 to 32K worked)",
           "Micikevicius et al. 2018 (Mixed Precision Training), §3.2"),
          ("Dynamic loss scaling trains fp16 to fp32's accuracy without choosing a scale",
           "Micikevicius et al. 2018 (Mixed Precision Training), §3.2; torch.amp.GradScaler"),
          ("bf16 trains to fp32's accuracy with no loss scaling and no hyperparameter change",
           "Kalamkar et al. 2019 (A Study of BFLOAT16 for Deep Learning Training), §1, §4"))


STRESS_LOST = ("Without loss scaling, fp16 turns gradient values below its range (2^-24) into zeros, and "
               "training suffers", "Micikevicius et al. 2018 (Mixed Precision Training), §3.2")
STRESS_RESCUED = ("Scaling the loss moves those gradients into fp16's range and recovers fp32's accuracy",
                  "Micikevicius et al. 2018 (Mixed Precision Training), §3.2; torch.amp.GradScaler")
STRESS = ("at loss × s (s < 1, a power of 2; the optimizer's eps × s, so fp32 at s trains as at 1), against fp32 at the "
          "same s: ")
STRESS_LOST_TESTED = (STRESS + "fp16 unscaled worse beyond δ (one-sided paired t, a diverged seed counts as worse) "
                      f"on every task × optimizer, intersection-union, {verdicts.margin_text('fp32')}; against: "
                      "non-inferior on some pair, Bonferroni over the pairs; Holm")
STRESS_RESCUED_TESTED = (STRESS + _tested("fp16 dynamic") + ". A static c under s is c · s at scale 1 (exact): "
                         "the first claim's grid answers for it")


def stressed(pr: pd.DataFrame) -> pd.DataFrame:
    return pr[loss_scales(pr) != 1.0]


def _invariance(g: pd.DataFrame, at_one: pd.DataFrame) -> str:
    """fp32 at s against fp32 at 1 of the same task × optimizer: the construction's check."""
    same = (at_one.task == g.task.iloc[0]) & (at_one.optimizer == g.optimizer.iloc[0])
    ref = at_one[(variant(at_one) == "fp32") & same]
    d = (by_seed(g[variant(g) == "fp32"]) - by_seed(ref)).dropna().abs()
    if not len(d):
        return "no fp32 at 1"
    return f"fp32 at s − fp32 at 1: max |Δ| = {short(float(d.max()))} over {len(d)} seeds"


def stress_is_lost(pr: pd.DataFrame) -> dict:
    """fp16 unscaled at loss × s against fp32 at s, per task × optimizer: worse beyond δ on every
    pair (intersection-union: the largest p) reproduces; non-inferior on some pair (Bonferroni)
    refutes."""
    claim, src = STRESS_LOST
    st = stressed(pr)
    if st.empty:
        return verdicts.row(claim, src, STRESS_LOST_TESTED, "not measured", "no stress condition in this profile")
    worse, fine, lines, n_min = [], [], [], math.inf
    for (task, opt, s), g in st.groupby(["task", "optimizer", "loss_scale"]):
        v = variant(g)
        ref, got = g[v == "fp32"], g[v == "fp16 unscaled"]
        if ref.empty or got.empty or ref.diverged.any():
            lines.append(f"{task}/{opt} at loss × {_pow2(s)}: no fp32 reference or no fp16 unscaled, left out")
            continue
        n_min = min(n_min, len(set(got.seed) & set(ref.seed)))
        worse.append(inferiority_p(got, ref))
        fine.append(non_inferiority_p(got, ref))
        outcome = (f"diverged on {int(got.diverged.sum())}/{len(got)} seeds" if got.diverged.any()
                   else stats.paired(by_seed(got), by_seed(ref)).text("fp16 unscaled", "fp32"))
        lines.append(f"{task}/{opt} at loss × {_pow2(s)}: {_invariance(g, unstressed(pr))}; fp16 unscaled lost "
                     f"{short(float(got.underflow_share.mean()), 2)} of the gradient entries (mean over runs and "
                     f"probes; the least run {short(float(got.underflow_share.min()), 2)}), {outcome}; δ = "
                     f"{verdicts.margin_of(float(by_seed(ref).mean())):.3g}")
    evidence = "; ".join(lines)
    if not worse:
        return verdicts.row(claim, src, STRESS_LOST_TESTED, "not measured", evidence)
    if n_min < verdicts.MIN_SEEDS:
        return verdicts.row(claim, src, STRESS_LOST_TESTED, verdicts.FEW, evidence)
    tests = (("worse beyond δ on every pair", max(worse), "reproduced"),
             ("non-inferior on some pair", min(1.0, min(fine) * len(fine)), "not reproduced"))
    return verdicts.row(claim, src, STRESS_LOST_TESTED, "inconclusive", evidence, tests)


def stress_is_rescued(pr: pd.DataFrame) -> dict:
    """fp16 dynamic at loss × s against fp32 at s, as the scale-1 dynamic claim (`_matches`)."""
    claim, src = STRESS_RESCUED
    st = stressed(pr)
    if st.empty:
        return verdicts.row(claim, src, STRESS_RESCUED_TESTED, "not measured", "no stress condition in this profile")
    row = _matches(st, "fp16 dynamic", claim, src, STRESS_RESCUED_TESTED)
    dynamic = st[variant(st) == "fp16 dynamic"].groupby(["task", "optimizer", "loss_scale"])
    moves = "; ".join(f"{t}/{o} at loss × {_pow2(s)}: fp16 dynamic lost {short(float(h.underflow_share.mean()), 2)} "
                      f"of the entries, growths / backoffs {_moves(h)}" for (t, o, s), h in dynamic)
    return {**row, "evidence": f"{row['evidence']}; {moves}"}


def claims(tables: dict[str, pd.DataFrame]) -> list[dict]:
    everything = tables.get("precision", pd.DataFrame())
    if everything.empty:
        return [verdicts.row(c, s, t, "not measured", "no precision runs in this profile")
                for (c, s), t in zip(CLAIMS + (STRESS_LOST, STRESS_RESCUED), (FIXED_TESTED, _tested("fp16 dynamic"),
                                     _tested("bf16"), STRESS_LOST_TESTED, STRESS_RESCUED_TESTED))]
    pr = unstressed(everything)
    return [fixed_scale_is_safe(pr), _matches(pr, "fp16 dynamic", *CLAIMS[1]), _matches(pr, "bf16", *CLAIMS[2]),
            stress_is_lost(everything), stress_is_rescued(everything)]
