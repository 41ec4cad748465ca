"""The claims of the seed notes, tested against this profile's tables.

Each check reads the tables only and returns a row: the claim, where it comes from, a verdict
(`reproduced`, `not reproduced`, `inconclusive` when confidence intervals overlap, or `not
measured` when the profile lacks the runs) and the numbers behind it.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from report import precision, stats, studies
from report.output import claim_row, md_table, short


def _final(runs, task, optimizer):
    g = runs[(runs.task == task) & (runs.optimizer == optimizer)]
    if g.empty:
        return None
    return stats.bootstrap_ci(g.loc[~g.diverged, "final_metric"].tolist()), g


def _compare(runs, task_family, a, b, claim, source):
    """a beats b on the final metric of the first task of `task_family` with both."""
    for task in sorted(runs.loc[runs.task_family == task_family, "task"].unique()):
        ra, rb = _final(runs, task, a) or (None, None), _final(runs, task, b) or (None, None)
        if ra[0] is None or rb[0] is None:
            continue
        (ma, la, ha), (mb, lb, hb) = ra[0], rb[0]
        lower = runs.loc[runs.task == task, "direction"].iloc[0] == "min"
        better = ma < mb if lower else ma > mb
        separated = (ha < lb or hb < la)
        verdict = "reproduced" if better and separated else ("not reproduced" if separated else "inconclusive")
        metric = runs.loc[runs.task == task, "metric"].iloc[0]
        return claim_row(claim, source, verdict, f"{task}: {metric} {a} {short(ma)} [{short(la)}, {short(ha)}] "
                    f"vs {b} {short(mb)} [{short(lb)}, {short(hb)}]")
    return claim_row(claim, source, "not measured", f"no {task_family} task with both {a} and {b} in this profile")


def stability_task(st, needed=("adam", "sgd")):
    """The stability claims read one task, so that the scales of different tasks never mix: of the
    tasks with every optimizer they need, the one swept over the most scales (then by name)."""
    if st.empty:
        return None
    found = [(-g.scale.nunique(), t) for t, g in st.groupby("task") if set(needed) <= set(g.optimizer)]
    return min(found)[1] if found else None


def loss_scale_invariance(st):
    claim = "Adam's trajectory is unchanged by loss × c (until c·|g| nears ε); SGD's is not"
    src = "seed 004"
    task = stability_task(st)
    if task is None:
        return claim_row(claim, src, "not measured", "needs adam and sgd in one task's stability sweep")
    st = st[st.task == task]
    out = []
    for opt in ("adam", "sgd"):
        g = st[(st.optimizer == opt) & (st.axis == "loss")]
        out.append(stats.stable_decades(g.scale, g.gap_to_unscaled < 1e-3))
    ok = out[0] >= 4 and (math.isnan(out[1]) or out[1] < 1)
    return claim_row(claim, src, "reproduced" if ok else "not reproduced",
                f"{task}: decades of c with the c = 1 curve kept (rel. 1e-3): adam {short(out[0])}, sgd {short(out[1])}")


def sgd_loss_equals_lr(st):
    claim = "For SGD, loss × c and lr × c give the same trajectory"
    src = "seed 004"
    task = stability_task(st, ("sgd",))
    if task is None:
        return claim_row(claim, src, "not measured", "needs sgd in the stability sweep")
    g = st[(st.task == task) & (st.optimizer == "sgd") & (st.axis == "loss")]
    gaps = g.gap_to_lr_scaled.replace(float("inf"), float("nan")).dropna()
    worst = float(gaps.max()) if len(gaps) else math.inf
    return claim_row(claim, src, "reproduced" if worst < 1e-4 else "not reproduced",
                f"{task}: largest relative gap between the loss curves over {len(g)} values of c: {short(worst)}")


def state_ratio(runs, opt, base, claim, source, expect):
    g = runs[runs.optimizer.isin([opt, base])]
    if g.empty or not {opt, base} <= set(g.optimizer):
        return claim_row(claim, source, "not measured", f"needs {opt} and {base}")
    task = g.sort_values("n_params").task.iloc[-1]
    per = g[g.task == task].groupby("optimizer").state_bytes_per_param.first()
    if opt not in per or base not in per:
        return claim_row(claim, source, "not measured", f"{opt} and {base} not both on {task}")
    ok = expect(per[opt], per[base])
    return claim_row(claim, source, "reproduced" if ok else "not reproduced",
                f"{task} ({int(g[g.task == task].n_params.iloc[0])} params): {opt} {short(per[opt])} B/param, "
                f"{base} {short(per[base])} B/param")


def fewer_steps(runs, a, b, family, claim, source):
    for task in sorted(runs.loc[runs.task_family == family, "task"].unique()):
        sa = runs[(runs.task == task) & (runs.optimizer == a)].steps_to_target
        sb = runs[(runs.task == task) & (runs.optimizer == b)].steps_to_target
        if len(sa) and len(sb):
            ma, mb = sa.fillna(math.inf).median(), sb.fillna(math.inf).median()
            if math.isinf(ma) and math.isinf(mb):
                verdict = "inconclusive"
            else:
                verdict = "reproduced" if ma < mb else "not reproduced"
            return claim_row(claim, source, verdict, f"{task}: median steps to target {a} {short(ma)} "
                        f"({sa.notna().sum()}/{len(sa)} reached), {b} {short(mb)} ({sb.notna().sum()}/{len(sb)})")
    return claim_row(claim, source, "not measured", f"no {family} task with both {a} and {b}")


def gan_beta1(runs):
    claim = "β1 = 0.5 stabilises GAN training with Adam (against β1 = 0.9)"
    src = "seed 001"
    gans = runs[runs.task_family == "gan"]
    pairs = [(t, t + "-beta1-0.9") for t in gans.task.unique() if t + "-beta1-0.9" in set(gans.task)]
    for t05, t09 in pairs:
        a, b = _final(runs, t05, "adam"), _final(runs, t09, "adam")
        if a and b:
            (ma, la, ha), ga = a
            (mb, lb, hb), gb = b
            lower = ga.direction.iloc[0] == "min"
            better = ma < mb if lower else ma > mb
            separated = ha < lb or hb < la
            verdict = "reproduced" if better and separated else ("not reproduced" if separated else "inconclusive")
            return claim_row(claim, src, verdict, f"adam {ga.metric.iloc[0]}: β1 0.5 {short(ma)} [{short(la)}, {short(ha)}], "
                        f"β1 0.9 {short(mb)} [{short(lb)}, {short(hb)}]; diverged {int(ga.diverged.sum())} vs {int(gb.diverged.sum())}")
    return claim_row(claim, src, "not measured", "needs adam on a GAN task and its -beta1-0.9 ablation")


def toy_first_step(runs, curves):
    claim = "Seed 003's toy (Adam, lr 0.1, x⁴ + 3x³ + 2 from x = 3) prints x = 2.7272 after the first step"
    src = "seed 003"
    c = curves[(curves.task == "toy-quartic") & (curves.optimizer == "adam") & (curves.series == "x") & (curves.step == 1)]
    if c.empty:
        return claim_row(claim, src, "not measured", "needs adam on toy-quartic with x evaluated after step 1")
    x1 = float(c.value.iloc[0])
    lr = runs[(runs.task == "toy-quartic") & (runs.optimizer == "adam")].lr.iloc[0]
    return claim_row(claim, src, "reproduced" if abs(x1 - 2.7272) < 1e-3 else "not reproduced",
                f"our first step: x = {x1:.4f} at lr {lr:g} (a correct Adam step moves x by about lr, "
                f"since m̂/√v̂ = sign(g) at step 1)")


def table(t: dict) -> pd.DataFrame:
    runs, st, curves = t["runs"], t["stability"], t["curves"]
    if runs.empty:
        return pd.DataFrame()
    rows = [
        loss_scale_invariance(st),
        sgd_loss_equals_lr(st),
        state_ratio(runs, "adam8bit", "adam", "8-bit Adam keeps about 2 B/param of state against Adam's 8",
                    "seeds 001, 003", lambda a, b: a <= 0.35 * b),
        state_ratio(runs, "adafactor", "adam", "Adafactor's state is O(n + m) for an n × m matrix, far below Adam's",
                    "seeds 001, 003", lambda a, b: a <= 0.25 * b),
        _compare(runs, "lm", "muon", "adamw", "Muon reaches a lower LM validation loss than AdamW", "seed 004"),
        fewer_steps(runs, "sophia", "adamw", "lm", "Sophia needs fewer steps than AdamW to the LM target", "seed 003"),
        gan_beta1(runs),
        toy_first_step(runs, curves),
    ]
    rows += precision.claims(t) + studies.claims(t)
    return pd.DataFrame(rows)


def section(tables: dict, out: Path) -> list[str]:
    """The first section on the final runs: where there are none, the report says so here."""
    if tables["runs"].empty:
        return ["_No final runs in the tables._"]
    return ["## Claims", "",
            "The seed notes' claims, and those of the studies below (mixed precision, QK-clip, "
            "scale), each checked against this profile's runs at this scale: `reproduced`, `not "
            "reproduced`, `inconclusive` (confidence intervals overlap) or `not measured`.", "",
            md_table(table(tables)), ""]
