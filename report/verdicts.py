"""How a claim's verdict follows from its test: the rules every claim row of the report obeys.

A row states the claim as its primary source does (`claim`, `source`: paper and section) and the
statement this profile tests (`tested`). Its verdict is one of

- `reproduced` / `not reproduced`: for a better/worse statement, the paired two-sided t-test over
  the seeds A and B share rejects at α = 0.05 after Holm's correction over every such test of the
  report (one family, ``resolve``), the sign saying which; for "matches" / "costs nothing", TOST
  equivalence within the margin the row states (reproduced), or a Holm-significant difference
  beyond it the wrong way (not reproduced); for a measured count (bytes of state) the count itself;
- `inconclusive`: the test rejects neither way;
- `not measured (n < 5)`: the task the claim rests on has fewer than MIN_SEEDS paired seeds (the
  test is shown, but decides nothing and is left out of the Holm family);
- `not measured`: the profile lacks the runs; `reported`: a measurement shown, not a test.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from report import stats

MIN_SEEDS = 5
RELATIVE_MARGIN = 0.01   # equivalence / non-inferiority margin: 1 % of the reference's mean
FEW = f"not measured (n < {MIN_SEEDS})"


def margin_of(reference: float) -> float:
    return RELATIVE_MARGIN * abs(reference)


def margin_text(b: str) -> str:
    return f"margin δ = {RELATIVE_MARGIN:.0%} of {b}'s mean"


def row(claim, source, tested, verdict, evidence, p=math.nan, if_significant=None) -> dict:
    """One claim row. `p`: the raw p of its better/worse test (NaN: none, or not in the family);
    `if_significant`: its verdict when the Holm-adjusted p < α (else `verdict` stands)."""
    return {"claim": claim, "source": source, "tested": tested, "verdict": verdict, "evidence": evidence,
            "_p": p, "_if_significant": if_significant}


def better(a: pd.Series, b: pd.Series, lower: bool, a_name: str, b_name: str) -> tuple[str, str, float, str]:
    """"A better than B" on per-seed values (indexed by seed): (verdict before correction,
    evidence, raw p for the family, verdict if Holm-significant)."""
    t = stats.paired(a, b)
    evidence = t.text(a_name, b_name)
    if t.n < MIN_SEEDS:
        return FEW, evidence, math.nan, None
    a_better = (t.diff < 0) == lower and t.diff != 0
    return "inconclusive", evidence, t.p, "reproduced" if a_better else "not reproduced"


def matches(a: pd.Series, b: pd.Series, lower: bool, a_name: str, b_name: str,
            better_is_fine: bool) -> tuple[str, str, float, str]:
    """"A matches B" (or, `better_is_fine`, "A costs nothing against B"): TOST within ±δ (δ = 1 % of
    B's mean) reproduces it; a Holm-significant test that the difference lies beyond δ (on the wrong
    side, for non-inferiority) refutes it. Returns as ``better``."""
    t = stats.paired(a, b)
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").astype(float).dropna()
    d = (joined.a - joined.b).to_numpy()
    delta = margin_of(float(joined.b.mean())) if len(joined) else math.nan
    if better_is_fine:   # non-inferiority: H0 "A worse by δ or more", one-sided
        p_eq = stats.one_sided_p(d, delta if lower else -delta, greater=not lower)
    else:
        p_eq = stats.tost_p(d, delta)
    evidence = f"{t.text(a_name, b_name)}; δ = {delta:.3g}, {'non-inferiority' if better_is_fine else 'TOST'} p = {p_eq:.3g}"
    if t.n < MIN_SEEDS:
        return FEW, evidence, math.nan, None
    if p_eq < stats.ALPHA:
        return "reproduced", evidence, math.nan, None
    # refuted only by a test of the claim's own negation, "beyond the margin" (A worse by more than δ
    # for non-inferiority, |A − B| > δ for equivalence), which joins the report's Holm family
    if better_is_fine:
        p_refute = stats.one_sided_p(d, delta if lower else -delta, greater=lower)
    else:
        p_refute = refute_p(d, delta)
    return "inconclusive", evidence, p_refute, "not reproduced"


def refute_p(d, delta: float) -> float:
    """p of H0 "|mean(d)| ≤ δ" against "beyond δ on either side": the smaller one-sided p, doubled
    (Bonferroni over the two sides; at most one of them can be small)."""
    p = min(stats.one_sided_p(d, delta, greater=True), stats.one_sided_p(d, -delta, greater=False))
    return min(1.0, 2 * p) if math.isfinite(p) else math.nan


def resolve(rows: list[dict]) -> pd.DataFrame:
    """The rows with Holm's correction applied over every row's better/worse p (one family per
    report): each tested row's evidence gains its raw and adjusted p, its verdict follows."""
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    adjusted = stats.holm(df["_p"].to_numpy(dtype=float))
    m = int(np.isfinite(df["_p"].to_numpy(dtype=float)).sum())
    for i, p_adj in enumerate(adjusted):
        if not math.isfinite(p_adj):
            continue
        df.loc[i, "evidence"] += f"; paired t p = {df.loc[i, '_p']:.3g}, Holm-adjusted (m = {m}) p = {p_adj:.3g}"
        if p_adj < stats.ALPHA:
            df.loc[i, "verdict"] = df.loc[i, "_if_significant"]
    return df.drop(columns=["_p", "_if_significant"])


def seed_values(runs: pd.DataFrame, task: str, optimizer: str) -> pd.Series:
    """Final metric per seed of one task × optimizer, NaN for a diverged seed (left unpaired)."""
    g = runs[(runs.task == task) & (runs.optimizer == optimizer)]
    return g.set_index("seed").final_metric.where(~g.set_index("seed").diverged).astype(float)
