"""Two studies on the LM, from the tables alone: MuonClip where QK-clip acts, and model size.

**QK-clip** (``qk_section``, ``qk_claims``). A task whose figures.json entry carries ``qk_tau``
(``lm-stdlib-qk``) runs MuonClip at that threshold; its comparators (Muon, AdamW) are the runs of
the task named by the entry's ``qk_base`` (``lm-stdlib``: the same data, seeds and batches, and tau
is a hyperparameter of MuonClip alone, so their runs there are what they would be on the QK task,
bit for bit, and are not run twice). MuonClip runs at the base task's Muon selection where the
task says so (its ``selection_of``: then the clip is the only difference); every LM task
evaluates ``max_attn_logit``: the largest pre-softmax attention logit over heads, layers and the
held-out windows, at every evaluation. What QK-clip guarantees is narrower than "every head stays
at or below tau" (``optimizers/muon.py``, ``MuonClip``): after each step, on that step's batch,
layer 0 is at or below tau in any forward and every layer is on the inputs it received; later layers
in a fresh forward, and any other text, are not bounded. The held-out maximum shows how close to
tau that keeps the model; the guarantee itself is tested in tests/test_lm_studies.py.

**Scale** (``scale_section``, ``scale_claims``). Tasks named ``<base>-scale-x<k>`` are one model at
k times the smallest's parameters, trained on tokens in proportion, each tuned at its size. Two
targets. The *common target* (the tasks' metric target, one held-out loss for every size) gives
steps and seconds to it against size: the same loss, and the batch is the same at every size, so
steps are tokens. It has to be one the smallest model reaches, so the largest reaches it early.
The *speed-up* is therefore Wen et al.'s (2025, "Fantastic Pretraining Optimizers and Where to Find
Them": the ratio of tokens AdamW needs to reach an optimizer's loss), at a loss matched per size
and pair (``speedups``), which falls near the end of the budget at every size. Steps to a loss are
read from the evaluated curve with linear interpolation between evaluations (the first crossing),
so that a speed-up is not rounded to the evaluation grid; seconds are those steps times the run's
mean seconds per step.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from report import stats  # noqa: E402
from report import verdicts  # noqa: E402
from report.output import save, short  # noqa: E402

QK_SERIES = "max_attn_logit"
STEP_SERIES = "train_max_attn_logit"   # the step's batch, after the update: not recorded yet
SCALE_NAME = re.compile(r"^(?P<base>.+)-scale-x(?P<multiple>\d+)$")
BASELINE = "adamw"
ROUNDING = 1e-4   # relative slack on tau: the clip's own float rounding is ~1e-5 of tau (muon.py)


def _runs(tables: dict) -> pd.DataFrame:
    """The final runs of the tuned track (the self-tuning track's runs are another question)."""
    runs = tables.get("runs", pd.DataFrame())
    if runs.empty or "track" not in runs:
        return runs
    return runs[runs.track == "tuned"]


# --- QK-clip ---------------------------------------------------------------------------------------

def qk_tasks(tables: dict) -> dict[str, float]:
    """{task: tau} for the tasks that declare a QK-clip threshold in figures.json."""
    return {t: float(f["qk_tau"]) for t, f in sorted(tables.get("figures", {}).items()) if "qk_tau" in f}


QK_COMPARATORS = ("muon", "adamw")   # read from the base task where the QK task does not run them


def qk_view(tables: dict, task: str) -> dict:
    """The runs and curves of a QK task's study: its own rows, and the base task's (figures.json
    ``qk_base``) rows of the comparators it does not run itself, relabelled as the QK task's (same
    data, seeds and batches: paired)."""
    base = tables.get("figures", {}).get(task, {}).get("qk_base")
    runs, curves = _runs(tables), tables.get("curves", pd.DataFrame())
    if runs.empty or not base:
        return {"runs": runs, "curves": curves}
    own = set(runs.loc[runs.task == task, "optimizer"])
    borrow = [o for o in QK_COMPARATORS if o not in own]
    out = {}
    for name, df in (("runs", runs), ("curves", curves)):
        if df.empty:
            out[name] = df
            continue
        extra = df[(df.task == base) & df.optimizer.isin(borrow)].assign(task=task)
        out[name] = pd.concat([df[df.task == task], extra], ignore_index=True)
    return out


def qk_optimizers(tables: dict, task: str) -> list[str]:
    """The optimizers of a QK task's study (its final runs and the comparators read from its base), by name."""
    runs = qk_view(tables, task)["runs"]
    return sorted(runs.loc[runs.task == task, "optimizer"].unique()) if not runs.empty else []


def max_logit_curves(tables: dict, task: str) -> pd.DataFrame:
    """[step, optimizer]: the held-out max attention logit, mean over seeds."""
    curves = qk_view(tables, task)["curves"]
    c = curves[(curves.task == task) & (curves.series == QK_SERIES)
               & curves.optimizer.isin(qk_optimizers(tables, task))]
    return c.pivot_table(index="step", columns="optimizer", values="value", aggfunc="mean")


def qk_selection_words(tables: dict, task: str) -> str:
    """How the QK study's optimizers got their hyperparameters, from the runs table: MuonClip at
    Muon's (the same lr and weight decay: the clip is then the only difference, an ablation), or
    each at its own tuned values."""
    runs = qk_view(tables, task)["runs"]
    r = runs[runs.task == task] if not runs.empty else runs
    hp = [c for c in ("lr", "weight_decay") if c in r]
    first = {o: r.loc[r.optimizer == o, hp].iloc[0] for o in ("muon", "muonclip") if (r.optimizer == o).any()}
    if len(first) == 2 and all(first["muon"][c] == first["muonclip"][c] or
                               (first["muon"][c] != first["muon"][c] and first["muonclip"][c] != first["muonclip"][c])
                               for c in hp):
        return ("MuonClip runs at Muon's tuned selection (" + ", ".join(f"{c} {first['muon'][c]:.3g}" for c in hp)
                + "): the clip is the only difference, an ablation of QK-clip; AdamW at its own tuned values.")
    return "Each optimizer at its own tuned hyperparameters."


def qk_summary(tables: dict, task: str, tau: float) -> pd.DataFrame:
    """Per optimizer: the peak of the seed-mean max-logit curve, the worst seed's peak (after step 0:
    the initial model is the same for all), both over tau, and the final (reported) loss."""
    view = qk_view(tables, task)
    curves, runs = view["curves"], view["runs"]
    rows = []
    for opt in qk_optimizers(tables, task):
        c = curves[(curves.task == task) & (curves.series == QK_SERIES) & (curves.optimizer == opt) & (curves.step > 0)]
        r = runs[(runs.task == task) & (runs.optimizer == opt)]
        if c.empty or r.empty:
            continue
        mean_peak = float(c.groupby("step").value.mean().max())
        worst = float(c.value.max())
        finals = r.loc[~r.diverged, "final_metric"].tolist()
        rows.append({"optimizer": opt, "lr": float(r.lr.iloc[0]), "seeds": len(r), "diverged": int(r.diverged.sum()),
                     "peak (mean)": mean_peak, "peak / tau": mean_peak / tau, "worst seed": worst,
                     "worst / tau": worst / tau, "val_loss": stats.t_interval(finals)})
    return pd.DataFrame(rows)


def qk_section(tables: dict, out: Path) -> list[str]:
    """Markdown lines: per QK task, the max-logit figure (mean over seeds, tau as a line) and table."""
    curves = tables.get("curves", pd.DataFrame())
    lines = []
    for task, tau in qk_tasks(tables).items():
        if curves.empty:
            continue
        m = max_logit_curves(tables, task)
        summary = qk_summary(tables, task, tau)
        if m.empty or summary.empty:
            continue
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for opt in m.columns:
            ax.plot(m.index, m[opt], label=opt, marker=".", linewidth=1.2)
        ax.axhline(tau, color="k", linestyle="--", linewidth=1, label=f"τ = {tau:g}")
        ax.set_xlabel("step")
        ax.set_ylabel("max pre-softmax logit (held-out, all heads and layers)")
        ax.set_title(f"{task}: max attention logit, mean over seeds")
        ax.legend(fontsize=8)
        table = pd.DataFrame({
            "optimizer": summary.optimizer, "lr": summary.lr.map(lambda v: f"{v:.3g}"),
            "peak max logit (mean over seeds)": [f"{short(p)} ({short(r)} τ)" for p, r in zip(summary["peak (mean)"], summary["peak / tau"])],
            "worst seed": [f"{short(p)} ({short(r)} τ)" for p, r in zip(summary["worst seed"], summary["worst / tau"])],
            "final loss (test split)": [f"{short(m_)} [{short(lo)}, {short(hi)}]" for m_, lo, hi in summary.val_loss],
            "diverged": summary.diverged.astype(str),
        })
        lines += [f"### MuonClip where QK-clip acts: {task} (τ = {tau:g})", "",
                  qk_selection_words(tables, task) + " The logit is the largest pre-softmax attention "
                  "logit over heads, layers and the held-out windows at each evaluation. QK-clip's "
                  "guarantee is per step, on the step's own batch: layer 0 at or below τ in any forward, "
                  "every layer on the inputs it received; later layers in a fresh forward and other text "
                  "can exceed τ (optimizers/muon.py), which is what the held-out curve shows.", "",
                  f"![max logit {task}]({save(fig, out, f'qk-max-logit-{task}')})", "",
                  table.to_markdown(index=False, disable_numparse=True), ""]
    return lines


def qk_claims(tables: dict) -> list[dict]:
    """Kimi K2's QK-clip, per QK task: the per-step guarantee (tested only where the tables hold the
    step's training-batch max logit, STEP_SERIES), the held-out maximum (reported, not a test of the
    guarantee), and that the clip costs no validation loss (non-inferiority)."""
    src = "Kimi Team 2025 (Kimi K2: Open Agentic Intelligence), §2.1 (MuonClip)"
    bound = "QK-clip rescales W_q, W_k after each update so that every head's max logit on that step's batch is at most τ"
    held = "Held-out max attention logit under MuonClip (all layers, held-out windows: beyond the guarantee)"
    cost = "QK-clip does not harm the loss: MuonClip trains as well as Muon"
    tested_cost = (f"MuonClip's final loss (test split) non-inferior to Muon's (one-sided paired t, "
                   f"{verdicts.margin_text('muon')}; against: worse beyond δ), Holm")
    rows = []
    for task, tau in qk_tasks(tables).items():
        curves = qk_view(tables, task)["curves"]
        s = qk_summary(tables, task, tau).set_index("optimizer") if not _runs(tables).empty else pd.DataFrame()
        if not {"muon", "muonclip"} <= set(s.index):
            rows += [verdicts.row(c, src, t, "not measured", f"{task}: needs muon and muonclip with {QK_SERIES} evaluated")
                     for c, t in ((bound, "per-step training-batch max logit ≤ τ"), (held, "reported"), (cost, tested_cost))]
            continue
        step = curves[(curves.task == task) & (curves.optimizer == "muonclip") & (curves.series == STEP_SERIES)]
        if step.empty:
            rows.append(verdicts.row(bound, src, "per-step training-batch max logit ≤ τ (1 + 1e-4)", "not measured",
                                     f"{task}: the tables hold {QK_SERIES} on held-out windows only (curves.csv), no "
                                     f"per-step training-batch maximum ({STEP_SERIES}); tests/test_lm_studies.py checks "
                                     "the guarantee on the step's batch"))
        else:
            worst = float(step.value.max())
            rows.append(verdicts.row(bound, src, "per-step training-batch max logit ≤ τ (1 + 1e-4)",
                                     "reproduced" if worst <= tau * (1 + ROUNDING) else "not reproduced",
                                     f"{task}: worst step's batch max logit {short(worst)} ({short(worst / tau)} τ)"))
        mu, mc = s.loc["muon"], s.loc["muonclip"]
        others = ", ".join(f"{o} {short(s.loc[o, 'peak (mean)'])} ({short(s.loc[o, 'peak / tau'])} τ)"
                           for o in ("muon", "adamw") if o in s.index)
        rows.append(verdicts.row(held, src, "reported: the held-out maximum, not the guarantee", "reported",
                                 f"{task}, τ = {tau:g}: MuonClip's held-out max logit peaks at {short(mc['peak (mean)'])} "
                                 f"({short(mc['peak / tau'])} τ; worst seed {short(mc['worst / tau'])} τ) against {others}"))
        verdict, evidence, tests = verdicts.matches(_seed_finals(tables, task, "muonclip"), _seed_finals(tables, task, "muon"),
                                                    True, "muonclip", "muon", better_is_fine=True)
        rows.append(verdicts.row(cost, src, tested_cost, verdict, f"{task}, test loss: {evidence}; "
                                 f"{qk_selection_words(tables, task)} Diverged seeds "
                                 f"muonclip {int(mc['diverged'])}, muon {int(mu['diverged'])}", tests))
    return rows


def _seed_finals(tables: dict, task: str, opt: str) -> pd.Series:
    return verdicts.seed_values(qk_view(tables, task)["runs"], task, opt)


# --- scale -----------------------------------------------------------------------------------------

def steps_to_target(steps, values, target: float) -> float:
    """The first step at which the evaluated `values` (lower is better) reach `target`, linearly
    interpolated between the last evaluation above it and the first at or below; NaN if never."""
    s, v = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    order = np.argsort(s)
    s, v = s[order], v[order]
    hit = np.flatnonzero(np.isfinite(v) & (v <= target))
    if hit.size == 0:
        return math.nan
    i = hit[0]
    if i == 0:
        return float(s[0])
    s0, s1, v0, v1 = s[i - 1], s[i], v[i - 1], v[i]
    if not math.isfinite(v0):
        return float(s1)
    return float(s0 + (s1 - s0) * (v0 - target) / (v0 - v1))


def scale_tasks(runs: pd.DataFrame) -> dict[str, list[tuple[int, str]]]:
    """{base: [(multiple, task), ...] sorted by multiple} for tasks named ``<base>-scale-x<k>``."""
    out: dict[str, list[tuple[int, str]]] = {}
    for task in sorted(runs.task.unique()) if not runs.empty else []:
        m = SCALE_NAME.match(task)
        if m:
            out.setdefault(m["base"], []).append((int(m["multiple"]), task))
    return {b: sorted(v) for b, v in out.items() if len(v) >= 2}


def _seed_steps(runs: pd.DataFrame, curves: pd.DataFrame, target: float) -> tuple[list, list]:
    """Each run's interpolated steps to `target` on its metric's curve (NaN if diverged or never),
    and those steps in seconds (the run's mean seconds per step)."""
    steps, secs = [], []
    for _, run in runs.iterrows():
        e = curves[(curves.task == run.task) & (curves.optimizer == run.optimizer) & (curves.seed == run.seed)
                   & (curves.series == run.metric)]
        st = math.nan if run.diverged else steps_to_target(e.step, e.value, target)
        steps.append(st)
        secs.append(st * run.train_seconds / run.steps if run.steps else math.nan)
    return steps, secs


def _all_ci(values) -> tuple[float, float, float]:
    """The 95 % t interval of the mean if every value is finite (every seed got there), else NaNs."""
    return stats.t_interval(values) if all(math.isfinite(v) for v in values) else (math.nan,) * 3


def scale_table(tables: dict, tasks: list[tuple[int, str]]) -> pd.DataFrame:
    """One row per (size, optimizer): parameters, lr, steps and seconds to the common target (mean
    over seeds, interpolated; NaN unless every seed reached it), final loss (95 % t interval)."""
    runs, curves = _runs(tables), tables.get("curves", pd.DataFrame())
    rows = []
    for multiple, task in tasks:
        for opt, g in runs[runs.task == task].groupby("optimizer"):
            target = float(g.target.iloc[0])
            steps, secs = _seed_steps(g, curves, target)
            rows.append({"task": task, "multiple": multiple, "n_params": int(g.n_params.iloc[0]), "optimizer": opt,
                         "lr": float(g.lr.iloc[0]), "steps": int(g.steps.max()), "target": target,
                         "reached": f"{sum(math.isfinite(x) for x in steps)}/{len(g)}",
                         "steps_to_target": _all_ci(steps), "seconds_to_target": _all_ci(secs),
                         "final": stats.t_interval(g.loc[~g.diverged, "final_metric"].tolist()),
                         "seconds_per_run": float(g.train_seconds.mean())})
    return pd.DataFrame(rows)


def speedups(tables: dict, tasks: list[tuple[int, str]]) -> pd.DataFrame:
    """Per size and optimizer other than AdamW, Wen et al.'s speed-up: AdamW's steps to a loss over
    the optimizer's steps to it, at the matched loss L* = the worse of the two optimizers' worst
    final seeds (so every seed of both reaches it: the slower one near its last step). Mean over
    seeds each, with a conservative interval from the two t intervals (low: AdamW's low
    over the optimizer's high; high: the reverse). Below 1: AdamW is faster."""
    runs, curves = _runs(tables), tables.get("curves", pd.DataFrame())
    rows = []
    for multiple, task in tasks:
        r = runs[(runs.task == task) & ~runs.diverged]
        base = r[r.optimizer == BASELINE]
        if base.empty:
            continue
        for opt, g in r[r.optimizer != BASELINE].groupby("optimizer"):
            matched = max(float(base.val_metric.max()), float(g.val_metric.max()))   # read on validation curves
            a, b = _all_ci(_seed_steps(base, curves, matched)[0]), _all_ci(_seed_steps(g, curves, matched)[0])
            rows.append({"multiple": multiple, "n_params": int(g.n_params.iloc[0]), "optimizer": opt,
                         "matched_loss": matched, "speedup": a[0] / b[0], "low": max(a[1], 0.0) / b[2],
                         # steps are positive: a t interval reaching below 0 bounds the ratio by 0 or ∞
                         "high": a[2] / b[1] if b[1] > 0 else math.inf})
    return pd.DataFrame(rows)


def scale_section(tables: dict, out: Path) -> list[str]:
    """Markdown lines: per scale family, steps and seconds to the common target and final loss
    against parameters (one line per optimizer, 95 % t intervals as bars), and the table."""
    lines = []
    for base, tasks in scale_tasks(_runs(tables)).items():
        t = scale_table(tables, tasks)
        if t.empty:
            continue
        target = t.target.iloc[0]
        sp = speedups(tables, tasks)
        fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), gridspec_kw={"wspace": 0.3})
        for opt, g in t.groupby("optimizer"):
            g = g.sort_values("n_params")
            for ax, col in zip(axes, ("steps_to_target", "seconds_to_target", "final")):
                mean, lo, hi = (np.array([v[k] for v in g[col]]) for k in range(3))
                ax.errorbar(g.n_params, mean, yerr=[mean - lo, hi - mean], marker="o", capsize=3, label=opt)
        axes[3].plot([], [])   # keep each optimizer's colour: the baseline has no speed-up line
        for opt, g in sp.groupby("optimizer") if not sp.empty else []:
            g = g.sort_values("n_params")
            axes[3].errorbar(g.n_params, g.speedup, yerr=[g.speedup - g.low, (g.high - g.speedup).replace(math.inf, np.nan)], marker="o",
                             capsize=3, label=opt)
        axes[3].axhline(1, color="k", linewidth=0.8)
        params = sorted(t.n_params.unique())
        for ax, label in zip(axes, (f"steps to val_loss {target:g}", f"seconds to val_loss {target:g}",
                                    "final val_loss", f"speed-up over {BASELINE} at matched loss")):
            ax.set_xscale("log")
            ax.set_xticks(params, [f"{n:,}" for n in params], minor=False)
            ax.set_xticks([], minor=True)
            ax.set_xlabel("parameters")
            ax.set_ylabel(label)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{base}: {len(tasks)} model sizes, tokens in proportion to parameters, each tuned at its size")
        shown = pd.DataFrame({
            "size": [f"x{m}" for m in t.multiple], "params": t.n_params.astype(str), "optimizer": t.optimizer,
            "lr": t.lr.map(lambda v: f"{v:.3g}"), "steps": t.steps.astype(str), "reached": t.reached,
            f"steps to {target:g}": [f"{short(m)} [{short(lo)}, {short(hi)}]" for m, lo, hi in t.steps_to_target],
            "seconds to it": [short(v[0]) for v in t.seconds_to_target],
            "final val_loss": [f"{short(m)} [{short(lo)}, {short(hi)}]" for m, lo, hi in t.final],
            "s / run": t.seconds_per_run.map(short),
        })
        sp_lines = [f"- {r.optimizer} at {r.n_params} params: {short(r.speedup)}× [{short(r.low)}, {short(r.high)}] "
                    f"(matched val_loss {short(r.matched_loss)})" for r in sp.itertuples()]
        lines += [f"### Scale: {base}", "",
                  f"Steps (and seconds) to the common target val_loss {target:g} (every size's; steps are tokens, "
                  "the batch being the same at every size), interpolated between evaluations, and the final "
                  "loss, against parameter count. Mean over seeds with 95 % t intervals; a blank means "
                  "some seed missed the target.", "",
                  f"![scale {base}]({save(fig, out, f'scale-{base}')})", "",
                  shown.to_markdown(index=False, disable_numparse=True), "",
                  f"Speed-up over {BASELINE} at matched loss (Wen et al.'s measure: {BASELINE}'s steps to the worse "
                  "of the two optimizers' final losses over the optimizer's steps to it; intervals from the two "
                  "t intervals):", "", *sp_lines, ""]
    return lines


def orders_below(n_params: float, paper_smallest: float = 1e8) -> str:
    """How far the largest size here sits below Wen et al.'s smallest, in decades ('3.8')."""
    return f"{math.log10(paper_smallest / n_params):.1f}"


def seed_log_speedups(tables: dict, task: str, opt: str) -> pd.Series:
    """Per seed, log of Wen et al.'s speed-up of `opt` over AdamW on one task, at that seed's matched
    loss (the worse of the two runs' final losses, so that both reach it): NaN if either diverged."""
    runs, curves = _runs(tables), tables.get("curves", pd.DataFrame())
    r = runs[runs.task == task]
    out = {}
    for seed in sorted(set(r.loc[r.optimizer == BASELINE, "seed"]) & set(r.loc[r.optimizer == opt, "seed"])):
        pair = r[(r.seed == seed) & r.optimizer.isin([BASELINE, opt])]
        if pair.diverged.any():
            out[seed] = math.nan
            continue
        matched = float(pair.val_metric.max())   # the curves are validation ones
        base, other = (_seed_steps(pair[pair.optimizer == o], curves, matched)[0][0] for o in (BASELINE, opt))
        out[seed] = math.log(base / other) if other > 0 else math.nan
    return pd.Series(out, dtype=float)


def scale_claims(tables: dict) -> list[dict]:
    """Wen et al.'s direction, per matrix optimizer: the speed-up over AdamW shrinks with size,
    tested on the per-seed log speed-ups at the smallest and largest sizes, paired by seed."""
    claim = "Matrix optimizers' speed-up over AdamW shrinks with model size (~1.4× at 0.1B to ~1.1× at 1.2B)"
    src = "Wen et al. 2025 (Fantastic Pretraining Optimizers and Where to Find Them), §1, §4"
    tested = ("log speed-up at the smallest size − at the largest, paired by seed, against 0 (two-sided t, Holm; a positive mean reproduces it); "
              "speed-up = AdamW's steps / the optimizer's to the seed's matched loss")
    rows = []
    for base, tasks in scale_tasks(_runs(tables)).items():
        sp = speedups(tables, tasks)
        for opt, g in sp.groupby("optimizer") if not sp.empty else []:
            g = g.sort_values("n_params")
            small, large = tasks[0][1], tasks[-1][1]
            each = "; ".join(f"{int(r.n_params)} params {short(r.speedup)}× [{short(r.low)}, {short(r.high)}]"
                             for r in g.itertuples())
            verdict, evidence, tests = verdicts.better(seed_log_speedups(tables, small, opt),
                                                       seed_log_speedups(tables, large, opt), False,
                                                       f"ln speed-up {small}", large)
            rows.append(verdicts.row(f"{claim}: {opt}", src, tested, verdict,
                                     f"{base}: {evidence}; speed-up in steps at matched loss (mean): {each}. Sizes "
                                     f"{int(g.n_params.min())}–{int(g.n_params.max())} parameters, "
                                     f"{orders_below(g.n_params.max())} orders of magnitude below the paper's "
                                     "smallest (0.1B)", tests))
    if not rows:
        rows.append(verdicts.row(claim, src, tested, "not measured", "needs adamw and a matrix optimizer on two or more "
                                 "<task>-scale-x<k> sizes"))
    return rows


def section(tables: dict, out: Path) -> list[str]:
    """The LM studies' section: the QK-clip and scale studies the profile ran, under one heading."""
    study = qk_section(tables, out) + scale_section(tables, out)
    return ["## LM studies: MuonClip where QK-clip acts, and scale", ""] + study if study else []


def claims(tables: dict) -> list[dict]:
    """The studies' claim rows (report.claims' format)."""
    return qk_claims(tables) + scale_claims(tables)
