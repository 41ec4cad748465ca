"""How a claim's verdict follows from its test: the rules every claim row of the report obeys.

A row states the claim as its primary source does (`claim`, `source`: paper and section) and the
statement this profile tests (`tested`). Its verdict is one of

- `reproduced` / `not reproduced`: for a better/worse statement, the paired two-sided t-test over
  the seeds A and B share rejects at α = 0.05 after Holm's correction (``resolve``), the sign saying
  which; for "matches" / "costs nothing", TOST equivalence (or one-sided non-inferiority) within the
  margin the row states (reproduced), or the test of the claim's negation, the difference beyond
  the margin the wrong way (not reproduced), each Holm-corrected; for a measured count (bytes of
  state) the count itself;
- `inconclusive`: no test of the row rejects;
- `not measured (n < 5)`: the task the claim rests on has fewer than MIN_SEEDS paired seeds (the
  test is shown, but decides nothing and is left out of the Holm family);
- `not measured`: the profile lacks the runs; `reported`: a measurement shown, not a test.

**One family.** Every hypothesis test that can decide a verdict joins one Holm family per report:
a better/worse row contributes its two-sided p, an equivalence row two hypotheses, "within the
margin" (its TOST or non-inferiority p, deciding `reproduced`) and "beyond it" (deciding `not
reproduced`); m counts them all. Holm's step-down keeps the family-wise error rate ≤ α under any
dependence whatever the hypotheses are, so an equivalence declared from an uncorrected TOST p can
no longer slip through where a difference would have needed the correction. The two hypotheses of
one row cannot both reject at level < 0.5: "within" needs the mean inside (−δ, δ), "beyond" outside.
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


def row(claim, source, tested, verdict, evidence, tests=()) -> dict:
    """One claim row. `tests`: the hypotheses that can decide it, each (name, raw p, the verdict
    when its Holm-adjusted p < α), all in the report's family (``resolve``); with none rejected,
    or none given, `verdict` stands."""
    return {"claim": claim, "source": source, "tested": tested, "verdict": verdict, "evidence": evidence,
            "_tests": tuple(tests)}


def better(a: pd.Series, b: pd.Series, lower: bool, a_name: str, b_name: str) -> tuple[str, str, tuple]:
    """"A better than B" on per-seed values (indexed by seed): (verdict before correction,
    evidence, the tests for the family)."""
    t = stats.paired(a, b)
    evidence = t.text(a_name, b_name)
    if t.n < MIN_SEEDS:
        return FEW, evidence, ()
    a_better = (t.diff < 0) == lower and t.diff != 0
    return "inconclusive", evidence, (("paired t", t.p, "reproduced" if a_better else "not reproduced"),)


def within(d, center: float, delta: float, one_sided_side: int = 0) -> tuple[tuple, float, float]:
    """The two hypotheses of an equivalence claim on the per-seed values `d` about `center`: the
    tests for the family, "within" (TOST p within ±δ of `center`, or, `one_sided_side` ±1, the
    non-inferiority p of H0 "beyond center + side·δ") deciding `reproduced`, and "beyond" (the
    negation: |d̄ − center| > δ, either side doubled, or the one side) deciding `not reproduced`;
    and the two raw p's (within, beyond)."""
    d = np.asarray(d, dtype=float) - center
    if one_sided_side:
        bound = one_sided_side * delta
        p_in = stats.one_sided_p(d, bound, greater=one_sided_side < 0)
        p_out = stats.one_sided_p(d, bound, greater=one_sided_side > 0)
        names = ("non-inferiority", "inferiority beyond δ")
    else:
        p_in, p_out = stats.tost_p(d, delta), refute_p(d, delta)
        names = ("TOST", "beyond δ")
    return ((names[0], p_in, "reproduced"), (names[1], p_out, "not reproduced")), p_in, p_out


def matches(a: pd.Series, b: pd.Series, lower: bool, a_name: str, b_name: str,
            better_is_fine: bool) -> tuple[str, str, tuple]:
    """"A matches B" (or, `better_is_fine`, "A costs nothing against B"): equivalence within ±δ
    (δ = 1 % of B's mean), or non-inferiority, against its negation, both in the family
    (``within``). Returns as ``better``."""
    t = stats.paired(a, b)
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").astype(float).dropna()
    d = (joined.a - joined.b).to_numpy()
    delta = margin_of(float(joined.b.mean())) if len(joined) else math.nan
    # non-inferiority: H0 "A worse by δ or more", worse being + for a loss (lower), − for a score
    tests, p_in, _ = within(d, 0.0, delta, (1 if lower else -1) if better_is_fine else 0)
    evidence = f"{t.text(a_name, b_name)}; δ = {delta:.3g}"
    if t.n < MIN_SEEDS:
        return FEW, evidence + f", {tests[0][0]} p = {p_in:.3g}", ()
    return "inconclusive", evidence, tests


def refute_p(d, delta: float) -> float:
    """p of H0 "|mean(d)| ≤ δ" against "beyond δ on either side": the smaller one-sided p, doubled
    (Bonferroni over the two sides; at most one of them can be small)."""
    p = min(stats.one_sided_p(d, delta, greater=True), stats.one_sided_p(d, -delta, greater=False))
    return min(1.0, 2 * p) if math.isfinite(p) else math.nan


def resolve(rows: list[dict]) -> pd.DataFrame:
    """The rows with Holm's correction applied over every test of every row (one family per
    report): each test's raw and adjusted p join its row's evidence, and the first test whose
    adjusted p < α sets the row's verdict."""
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    flat = [(i, name, p, verdict) for i, tests in enumerate(df["_tests"]) for name, p, verdict in tests]
    adjusted = stats.holm([p for _, _, p, _ in flat])
    m = int(sum(math.isfinite(p_adj) for p_adj in adjusted))
    evidence, verdicts, decided = list(df["evidence"]), list(df["verdict"]), set()
    for (i, name, p, verdict), p_adj in zip(flat, adjusted):
        if not math.isfinite(p_adj):
            continue
        evidence[i] += f"; {name} p = {p:.3g}, Holm-adjusted (m = {m}) p = {p_adj:.3g}"
        if p_adj < stats.ALPHA and i not in decided:
            verdicts[i] = verdict
            decided.add(i)
    return df.assign(evidence=evidence, verdict=verdicts).drop(columns=["_tests"])


def seed_values(runs: pd.DataFrame, task: str, optimizer: str) -> pd.Series:
    """Final metric per seed of one task × optimizer, NaN for a diverged seed (left unpaired)."""
    g = runs[(runs.task == task) & (runs.optimizer == optimizer)]
    return g.set_index("seed").final_metric.where(~g.set_index("seed").diverged).astype(float)
