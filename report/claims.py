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


def horizons(t: dict) -> tuple:
    """(the horizon check's table, the pairs whose sweep ran at the final runs' horizon): a pair is
    tuned at its full horizon where tuning.csv's steps equal runs.csv's (the profile's
    `tuning.full_horizon`)."""
    tuning, runs = t.get("tuning"), t.get("runs")
    full = set()
    if tuning is not None and len(tuning) and runs is not None and len(runs):
        final_steps = runs[runs.track == "tuned"].groupby(["task", "optimizer"]).steps.max()
        swept = tuning.groupby(["task", "optimizer"]).steps.max()
        full = {pair for pair, n in swept.items() if pair in final_steps and n >= final_steps[pair]}
    return t.get("horizon_check"), full


def horizon_note(horizon, pairs) -> str:
    """What the tuning horizon of the (task, optimizer) pairs a claim rests on was (`horizons`): the
    full horizon, or the profile's shorter one, shown to pick the full horizon's configuration only
    where the horizon check ran and found the same."""
    check, full = horizon if isinstance(horizon, tuple) else (horizon, set())
    said = []
    for task, opt in pairs:
        h = check[(check.task == task) & (check.optimizer == opt)] if check is not None and len(check) else None
        if (task, opt) in full:
            said.append(f"{opt} on {task} tuned at the full horizon")
        elif h is None or h.empty:
            said.append(f"{opt} on {task} tuned at a shorter horizon, not checked")
        elif bool(h.same.iloc[0]):
            said.append(f"{opt} on {task} the same at the full horizon")
        else:
            said.append(f"{opt} on {task} NOT the same (full horizon selects {h.full_selected.iloc[0]}, the "
                        f"final runs use {h.short_selected.iloc[0]}: the verdict rests on the shorter horizon's selection)")
    return "; tuning horizon: " + ", ".join(said)


def compare(runs, task_family, a, b, claim, source, horizon=None):
    """"A reaches a better final metric than B" on the first task of `task_family` with both; the
    evidence says what the horizon check found for the two pairs."""
    runs = _tuned(runs)
    tested = f"{a}'s final metric better than {b}'s, paired over seeds (two-sided t, Holm)"
    for task in sorted(runs.loc[runs.task_family == task_family, "task"].unique()):
        if not {a, b} <= set(runs.loc[runs.task == task, "optimizer"]):
            continue
        r = runs[runs.task == task]
        lower = r.direction.iloc[0] == "min"
        verdict, evidence, tests = verdicts.better(verdicts.seed_values(runs, task, a),
                                                   verdicts.seed_values(runs, task, b), lower, a, b)
        return row(claim, source, tested, verdict, f"{task}, {r.metric.iloc[0]} (test split): {evidence}"
                   + horizon_note(horizon, [(task, a), (task, b)]), tests)
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


SOPHIA_SRC = ("Liu et al. 2023 (Sophia: A Scalable Stochastic Second-order Optimizer for Language Model "
              "Pre-training; ICLR 2024), abstract and §3.2 (results; §3.1: the setup, Hessian every k = 10 steps); seed 003")
SOPHIA_FACTOR = 1.25   # "about half the steps": a speed-up within [2/1.25, 2·1.25] = [1.6, 2.5]× counts as 2×


def _log2_speedup(runs, curves, task, opt, base) -> tuple[pd.Series, int]:
    """Per seed, log2 of Wen et al.'s speed-up of `opt` over `base` at `base`'s final loss on that
    seed: base's steps to it over opt's. A seed where opt never reaches it within its budget gets
    base's steps over that budget, an upper bound on its speed-up (the bound favours opt, so a
    "faster" verdict is never helped by a miss more than the budget allows); NaN where either diverged.
    Returns the per-seed values and how many seeds missed."""
    out, missed = {}, 0
    for seed, b in runs[(runs.task == task) & (runs.optimizer == base)].set_index("seed").iterrows():
        o = runs[(runs.task == task) & (runs.optimizer == opt) & (runs.seed == seed)]
        if o.empty or b.diverged or o.diverged.iloc[0]:
            out[seed] = math.nan
            continue
        steps = []
        for name in (base, opt):
            e = curves[(curves.task == task) & (curves.optimizer == name) & (curves.seed == seed)
                       & (curves.series == b.metric)]
            steps.append(studies.steps_to_target(e.step, e.value, float(b.val_metric)))
        missed += not math.isfinite(steps[1])
        reached = steps[1] if math.isfinite(steps[1]) else float(o.steps.iloc[0])
        out[seed] = math.log2(steps[0] / reached) if reached > 0 and steps[0] > 0 else math.nan
    return pd.Series(out, dtype=float), missed


def declared(tuning: pd.DataFrame, runs: pd.DataFrame, task: str, opt: str, fixed=("ρ", "k")) -> str:
    """What `opt`'s result on `task` depends on, from the tables: the hyperparameters tuned and
    their search space (tuning.csv), the values selected (runs.csv), and `fixed`, the ones the
    search space leaves at the entry's defaults (their values are not in the tables)."""
    r = runs[(runs.task == task) & (runs.optimizer == opt)]
    chosen = f"lr {short(float(r.lr.iloc[0]))}, weight decay {short(float(r.weight_decay.iloc[0]))}"
    t = tuning[(tuning.task == task) & (tuning.optimizer == opt)] if len(tuning) else tuning
    if t.empty:
        return f"{chosen}; no tuning trials in tuning.csv; {', '.join(fixed)} at the entry's defaults (not in the tables)"
    return (f"tuned: {t.tuned.iloc[0]} over {t.search_space.iloc[0]} ({int(t.trials.iloc[0])} trials), selected "
            f"{chosen}; {', '.join(fixed)} not in the search space: the entry's defaults, untuned (their values "
            "are not in the tables)")


def sophia_rows(t: dict) -> list[dict]:
    """Liu et al.'s claim as it is stated, in two rows: Sophia is faster in steps (one-sided: the
    speed-up exceeds 1), and by about 2× (equivalence of log2 speed-up to 1 within ±log2 1.25);
    each row also carries its negation (not faster; outside [1.6, 2.5]×), all in the Holm family."""
    runs, curves = _tuned(t["runs"]), t["curves"]
    faster = ("Sophia reaches AdamW's validation loss in fewer steps (GPT-2 125M–770M, lr and ρ chosen per "
              "size, Hessian every k = 10 steps)")
    half = "Sophia reaches AdamW's validation loss in about half the steps: a 2× speed-up in steps"
    t_faster = ("per-seed log2(AdamW's steps / Sophia's to AdamW's final val_loss) > 0, one-sided t (against: "
                "< 0, one-sided), Holm")
    t_half = (f"the same log2 speed-up equivalent to 1 (2×) within ±log2 {SOPHIA_FACTOR} (speed-up in "
              f"[{2 / SOPHIA_FACTOR:g}, {2 * SOPHIA_FACTOR:g}]×), TOST (against: beyond the margin), Holm")
    lm = sorted(k for k in runs.loc[runs.task_family == "lm", "task"].unique()
                if {"sophia", "adamw"} <= set(runs.loc[runs.task == k, "optimizer"]))
    if not lm or curves.empty:
        return [row(c, SOPHIA_SRC, tt, "not measured", "needs sophia and adamw on an LM task with val_loss curves")
                for c, tt in ((faster, t_faster), (half, t_half))]
    task = lm[0]
    s, missed = _log2_speedup(runs, curves, task, "sophia", "adamw")
    s = s.dropna()
    mean, low, high = stats.t_interval(s)
    evidence = (f"{task}: speed-up {short(2 ** mean)}× [{short(2 ** low)}, {short(2 ** high)}] (geometric mean, "
                f"95 % t on log2, {len(s)} seeds: {', '.join(short(2 ** v) for v in s)}×; {missed} of them never "
                f"reached AdamW's final val_loss in its budget and count AdamW's steps to it over that budget, an "
                f"upper bound); {declared(t.get('tuning', pd.DataFrame()), runs, task, 'sophia')}")
    if len(s) < verdicts.MIN_SEEDS:
        return [row(faster, SOPHIA_SRC, t_faster, verdicts.FEW, evidence), row(half, SOPHIA_SRC, t_half, verdicts.FEW, evidence)]
    one_sided = (("faster, one-sided t", stats.one_sided_p(s, 0.0, greater=True), "reproduced"),
                 ("slower, one-sided t", stats.one_sided_p(s, 0.0, greater=False), "not reproduced"))
    equivalence, _, _ = verdicts.within(s, 1.0, math.log2(SOPHIA_FACTOR))
    return [row(faster, SOPHIA_SRC, t_faster, "inconclusive", evidence, one_sided),
            row(half, SOPHIA_SRC, t_half, "inconclusive", evidence, equivalence)]


def gan_beta1(runs, horizon=None):
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
        verdict, evidence, tests = verdicts.better(verdicts.seed_values(runs, t05, "adam"),
                                                   verdicts.seed_values(runs, t09, "adam"),
                                                   g.direction.iloc[0] == "min", "β1 0.5", "β1 0.9")
        return row(claim, src, tested, verdict, f"adam {g.metric.iloc[0]} (test split): {evidence}; diverged "
                   f"{int(g.diverged.sum())} vs {int(gb.diverged.sum())}"
                   + horizon_note(horizon, [(t05, "adam"), (t09, "adam")]), tests)
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
               f"the run's schedule ({r.schedule.iloc[0]}, which sets the first step's lr): Adam's first "
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
                "Liu et al. 2025 (Muon is Scalable for LLM Training), §3; Jordan et al. 2024 (Muon); seed 004",
                horizons(t)),
        *sophia_rows(t),
        gan_beta1(runs, horizons(t)),
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
             "(report/verdicts.py). Every test that can decide a verdict is in one Holm family over this table "
             "(α = 0.05; m in the evidence counts them all): a better/worse statement contributes its paired "
             "two-sided t-test over the seeds both runs share; a \"matches\" / \"costs nothing\" statement "
             "contributes two, its equivalence test (TOST, or one-sided non-inferiority, within the margin the "
             "row states) deciding `reproduced`, and the test of its negation (the difference beyond the "
             "margin) deciding `not reproduced`: equivalence verdicts are Holm-corrected like the others, in "
             "the same family. `inconclusive` where no test rejects; "
             f"`not measured (n < {verdicts.MIN_SEEDS})` when the task it rests on has fewer than "
             f"{verdicts.MIN_SEEDS} paired seeds (its interval is shown but decides nothing and is not in the "
             "family). Differences are A − B with their 95 % t interval over the paired seeds.", "",
             md_table(table(tables)), ""]
    checks = sanity(tables)
    if len(checks):
        lines += ["### Sanity checks", "",
                  "Identities of the arithmetic, checked in fp64 on the stability sweep: they test the code, "
                  "not a claim (they cannot fail unless the code is wrong).", "", md_table(checks), ""]
    return lines
