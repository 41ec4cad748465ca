"""The claims of the seed notes and of the papers behind them, tested against this profile's tables,
and the sanity checks (identities the code must satisfy, which cannot fail as claims can).

Each check reads the tables only and returns a row (report.verdicts: the claim as its primary
source states it, the statement tested, the verdict and the numbers behind it). ``table`` gathers
every section's rows and applies Holm's correction over the whole family at once.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from report import precision, stats, studies, verdicts
from report.output import md_table, short
from report.verdicts import row


def _tuned(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs.track == "tuned"] if "track" in runs else runs


def compare(runs, task_family, a, b, claim, source):
    """"A reaches a better final metric than B" on the first task of `task_family` with both."""
    runs = _tuned(runs)
    tested = f"{a}'s final metric better than {b}'s, paired over seeds (two-sided t, Holm)"
    for task in sorted(runs.loc[runs.task_family == task_family, "task"].unique()):
        if not {a, b} <= set(runs.loc[runs.task == task, "optimizer"]):
            continue
        r = runs[runs.task == task]
        lower = r.direction.iloc[0] == "min"
        verdict, evidence, p, sig = verdicts.better(verdicts.seed_values(runs, task, a),
                                                    verdicts.seed_values(runs, task, b), lower, a, b)
        return row(claim, source, tested, verdict, f"{task}, {r.metric.iloc[0]}: {evidence}", p, sig)
    return row(claim, source, tested, "not measured", f"no {task_family} task with both {a} and {b} in this profile")


def stability_task(st, needed=("adam", "sgd")):
    """The sanity checks read one task, so that the scales of different tasks never mix: of the
    tasks with every optimizer they need, the one swept over the most scales (then by name)."""
    if st.empty:
        return None
    found = [(-g.scale.nunique(), t) for t, g in st.groupby("task") if set(needed) <= set(g.optimizer)]
    return min(found)[1] if found else None


def loss_scale_invariance(st) -> dict:
    check = "Adam's trajectory is unchanged by loss × c (until c·|g| nears ε); SGD's is not (fp64 algebra)"
    task = stability_task(st)
    if task is None:
        return {"check": check, "result": "not measured", "evidence": "needs adam and sgd in one task's stability sweep"}
    st = st[st.task == task]
    out = []
    for opt in ("adam", "sgd"):
        g = st[(st.optimizer == opt) & (st.axis == "loss")]
        out.append(stats.stable_decades(g.scale, g.gap_to_unscaled < 1e-3))
    ok = out[0] >= 4 and (math.isnan(out[1]) or out[1] < 1)
    return {"check": check, "result": "passes" if ok else "fails",
            "evidence": f"{task}: decades of c with the c = 1 curve kept (rel. 1e-3): adam {short(out[0])}, sgd {short(out[1])}"}


def sgd_loss_equals_lr(st) -> dict:
    check = "For SGD, loss × c and lr × c give the same trajectory (fp64 algebra)"
    task = stability_task(st, ("sgd",))
    if task is None:
        return {"check": check, "result": "not measured", "evidence": "needs sgd in the stability sweep"}
    g = st[(st.task == task) & (st.optimizer == "sgd") & (st.axis == "loss")]
    gaps = g.gap_to_lr_scaled.replace(float("inf"), float("nan")).dropna()
    worst = float(gaps.max()) if len(gaps) else math.inf
    return {"check": check, "result": "passes" if worst < 1e-4 else "fails",
            "evidence": f"{task}: largest relative gap between the loss curves over {len(g)} values of c: {short(worst)}"}


def state_ratio(runs, opt, base, claim, source, expect, tested):
    """A count, not a sample: state bytes per parameter on the largest task with both."""
    g = runs[runs.optimizer.isin([opt, base])]
    if g.empty or not {opt, base} <= set(g.optimizer):
        return row(claim, source, tested, "not measured", f"needs {opt} and {base}")
    task = g.sort_values("n_params").task.iloc[-1]
    per = g[g.task == task].groupby("optimizer").state_bytes_per_param.first()
    if opt not in per or base not in per:
        return row(claim, source, tested, "not measured", f"{opt} and {base} not both on {task}")
    return row(claim, source, tested, "reproduced" if expect(per[opt], per[base]) else "not reproduced",
               f"{task} ({int(g[g.task == task].n_params.iloc[0])} params): {opt} {short(per[opt])} B/param, "
               f"{base} {short(per[base])} B/param (a count: no seeds involved)")


def _log2_speedup(runs, curves, task, opt, base) -> pd.Series:
    """Per seed, log2 of Wen et al.'s speed-up of `opt` over `base` at `base`'s final loss on that
    seed: base's steps to it over opt's; a seed where opt never reaches it counts as 0 (a speed-up
    of at most 1, the whole budget spent without matching), NaN where either diverged."""
    out = {}
    for seed, b in runs[(runs.task == task) & (runs.optimizer == base)].set_index("seed").iterrows():
        o = runs[(runs.task == task) & (runs.optimizer == opt) & (runs.seed == seed)]
        if o.empty or b.diverged or o.diverged.iloc[0]:
            out[seed] = math.nan
            continue
        steps = []
        for name in (base, opt):
            e = curves[(curves.task == task) & (curves.optimizer == name) & (curves.seed == seed)
                       & (curves.series == b.metric)]
            steps.append(studies.steps_to_target(e.step, e.value, float(b.final_metric)))
        out[seed] = math.log2(steps[0] / steps[1]) if math.isfinite(steps[1]) and steps[1] > 0 else 0.0
    return pd.Series(out, dtype=float)


def sophia_speedup(runs, curves):
    claim = ("Sophia reaches AdamW's validation loss in about half the steps (2× speed-up in steps; GPT-2 "
             "125M–770M, ρ tuned, Hessian every k = 10 steps)")
    src = "Liu et al. 2024 (Sophia, ICLR), abstract and §3.2/§4.2; seed 003"
    tested = "mean over seeds of log2(AdamW's steps / Sophia's steps to AdamW's final val_loss) against 1 (2×), two-sided t, Holm"
    runs = _tuned(runs)
    lm = sorted(t for t in runs.loc[runs.task_family == "lm", "task"].unique()
                if {"sophia", "adamw"} <= set(runs.loc[runs.task == t, "optimizer"]))
    if not lm or curves.empty:
        return row(claim, src, tested, "not measured", "needs sophia and adamw on an LM task with val_loss curves")
    task = lm[0]
    s = _log2_speedup(runs, curves, task, "sophia", "adamw").dropna()
    so = runs[(runs.task == task) & (runs.optimizer == "sophia")]
    hp = (f"hyperparameters: tuned lr {short(float(so.lr.iloc[0]))}, weight decay {short(float(so.weight_decay.iloc[0]))}; "
          "ρ and k are not in the tables (runs.csv records lr and weight decay only), i.e. the entry's defaults, untuned")
    t = stats.paired(s, pd.Series(1.0, index=s.index))
    evidence = (f"{task}: log2 speed-up − 1 = {short(t.diff)} [{short(t.low)}, {short(t.high)}] (95 % t, {t.n} seeds; "
                f"speed-ups {', '.join(short(2 ** v) for v in s)}×; a seed that never matched counts 1×); {hp}")
    if t.n < verdicts.MIN_SEEDS:
        return row(claim, src, tested, verdicts.FEW, evidence)
    return row(claim, src, tested, "inconclusive", evidence, t.p, "reproduced" if t.diff > 0 else "not reproduced")


def gan_beta1(runs):
    claim = "β1 = 0.5 (against the suggested 0.9) helped stabilise GAN training with Adam"
    src = "Radford et al. 2016 (DCGAN), §4; seed 001"
    tested = "Adam β1 = 0.5 reaches a better final metric than β1 = 0.9 on the same seeds (paired t, Holm), and diverges no more"
    gans = runs[runs.task_family == "gan"]
    for t05 in sorted(gans.task.unique()):
        t09 = t05 + "-beta1-0.9"
        if t09 not in set(gans.task) or not {t05, t09} <= set(gans.loc[gans.optimizer == "adam", "task"]):
            continue
        g = runs[(runs.task == t05) & (runs.optimizer == "adam")]
        gb = runs[(runs.task == t09) & (runs.optimizer == "adam")]
        verdict, evidence, p, sig = verdicts.better(verdicts.seed_values(runs, t05, "adam"),
                                                    verdicts.seed_values(runs, t09, "adam"),
                                                    g.direction.iloc[0] == "min", "β1 0.5", "β1 0.9")
        saturated = "; β1 0.5 at the metric's ceiling on every seed" if (g.final_metric == 1).all() else ""
        return row(claim, src, tested, verdict, f"adam {g.metric.iloc[0]}: {evidence}; diverged "
                   f"{int(g.diverged.sum())} vs {int(gb.diverged.sum())}{saturated}", p, sig)
    return row(claim, src, tested, "not measured", "needs adam on a GAN task and its -beta1-0.9 ablation")


def toy_first_step(runs, curves):
    claim = "Seed 003's toy (Adam, lr 0.1, x⁴ + 3x³ + 2 from x = 3) prints x = 2.7272 after the first step"
    src = "seed 003 (its printed trajectory); Kingma & Ba 2015 §2.1 (the first step moves each coordinate by the step size)"
    tested = "x after step 1 of our Adam run equals 2.7272 (deterministic: one value)"
    c = curves[(curves.task == "toy-quartic") & (curves.optimizer == "adam") & (curves.series == "x")]
    x0, x1 = (c.loc[c.step == s, "value"] for s in (0, 1))
    if x1.empty or x0.empty:
        return row(claim, src, tested, "not measured", "needs adam on toy-quartic with x evaluated at steps 0 and 1")
    r = runs[(runs.task == "toy-quartic") & (runs.optimizer == "adam")]
    lr, move = float(r.lr.iloc[0]), abs(float(x1.iloc[0]) - float(x0.iloc[0]))
    return row(claim, src, tested, "reproduced" if abs(float(x1.iloc[0]) - 2.7272) < 1e-3 else "not reproduced",
               f"our first step: x = {float(x1.iloc[0]):.4f}, a move of {move:.4g} = {move / lr:.3g} × lr {lr:g} under "
               f"the run's schedule ({r.schedule.iloc[0]}; its warm-up sets the first step's lr): Adam's first "
               f"step moves x by that step's lr (m̂/√v̂ = sign(g)); 2.7272 needs a move of 0.2728, 2.7 the step lr = 0.3")


def rows(t: dict) -> list[dict]:
    runs, curves = t["runs"], t["curves"]
    return [
        state_ratio(runs, "adam8bit", "adam", "8-bit Adam keeps its two moments in 1 byte each: about 2 B/param against Adam's 8",
                    "Dettmers et al. 2022 (8-bit Optimizers via Block-wise Quantization), §2; seeds 001, 003",
                    lambda a, b: a <= 0.35 * b, "adam8bit's state ≤ 0.35 × Adam's bytes per parameter"),
        state_ratio(runs, "adafactor", "adam", "Adafactor's factored second moment takes O(n + m) for an n × m matrix",
                    "Shazeer & Stern 2018 (Adafactor), §3; seeds 001, 003",
                    lambda a, b: a <= 0.25 * b, "adafactor's state ≤ 0.25 × Adam's bytes per parameter"),
        compare(runs, "lm", "muon", "adamw", "Muon reaches a lower LM validation loss than AdamW at the same steps",
                "Liu et al. 2025 (Muon is Scalable for LLM Training), §3; Jordan et al. 2024 (Muon); seed 004"),
        sophia_speedup(runs, curves),
        gan_beta1(runs),
        toy_first_step(runs, curves),
    ] + precision.claims(t) + studies.claims(t)


def table(t: dict) -> pd.DataFrame:
    if t["runs"].empty:
        return pd.DataFrame()
    return verdicts.resolve(rows(t))


def sanity(t: dict) -> pd.DataFrame:
    st = t["stability"]
    return pd.DataFrame([loss_scale_invariance(st), sgd_loss_equals_lr(st)]) if len(st) else pd.DataFrame()


def section(tables: dict, out: Path) -> list[str]:
    """The first section on the final runs: where there are none, the report says so here."""
    if tables["runs"].empty:
        return ["_No final runs in the tables._"]
    lines = ["## Claims", "",
             "Each claim as its primary source states it, the statement this profile tests, and the verdict "
             "(report/verdicts.py): a better/worse statement is `reproduced` or `not reproduced` only when the "
             "paired t-test over the seeds both runs share rejects at α = 0.05 after Holm's correction over "
             "every such test in this table (one family); \"matches\" and \"costs nothing\" are `reproduced` "
             "only by equivalence (TOST) or non-inferiority within the margin the row states; `inconclusive` "
             f"otherwise; `not measured (n < {verdicts.MIN_SEEDS})` when the task it rests on has fewer than "
             f"{verdicts.MIN_SEEDS} paired seeds (its test is shown but decides nothing and is not in the family). "
             "Differences are A − B with their 95 % t interval over the paired seeds.", "",
             md_table(table(tables)), ""]
    checks = sanity(tables)
    if len(checks):
        lines += ["### Sanity checks", "",
                  "Identities of the arithmetic, checked in fp64 on the stability sweep: they test the code, "
                  "not a claim (they cannot fail unless the code is wrong).", "", md_table(checks), ""]
    return lines
