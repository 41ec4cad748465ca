"""Statistics the report uses: t-intervals on a mean, paired comparisons over shared seeds, Holm's
step-down correction, equivalence (TOST) and non-inferiority tests, Dolan–Moré performance profiles.

Why these. With 3–5 seeds a percentile bootstrap of the mean returns roughly the seeds' range and
covers the mean far less often than its nominal level (about 75 % at n = 3); the Student t
interval is exact for normal data at any n ≥ 2 and is the interval tests/test_stats.py checks by
simulation (coverage of the 95 % interval at n = 3, 5, 10). Seeds are paired across optimizers
(same initialisation, same batches), so an "A vs B" is a one-sample problem on the per-seed
differences d_i = A_i − B_i: the paired t-test and its interval use the pairing and lose nothing
to the seed-to-seed variance the two runs share.

A better/worse verdict rests on the paired two-sided p after Holm's (1979) step-down correction
over the report's whole family of such claims; "matches" / "costs nothing" rests on Schuirmann's
(1987) two one-sided tests (TOST) with a stated margin δ: equivalent when both H0: d̄ ≤ −δ and
H0: d̄ ≥ δ are rejected at α, i.e. when the 90 % t-interval lies inside (−δ, δ). Student t
quantiles and tails come from scipy.stats.t.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sp

ALPHA = 0.05
LEVEL = 0.95


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, low, high): the Student t interval on the mean of the finite values,
    mean ± t_{n−1, (1+level)/2}·s/√n, of coverage `level` for normal data. One value: the interval
    is that value (no width can be stated); none: NaNs."""
    x = _finite(values)
    if x.size == 0:
        return (math.nan,) * 3
    mean = float(x.mean())
    if x.size == 1:
        return (mean,) * 3
    half = float(sp.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def t_band(curves, level: float = LEVEL):
    """(mean, low, high) per column of ``curves`` [seeds, steps]: the t interval of every step's
    mean over the seeds that have a value there (a diverged run's missing tail is left out)."""
    x = np.asarray(curves, dtype=float)
    n = np.isfinite(x).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(x, axis=0) / n
        sd = np.sqrt(np.nansum((x - mean) ** 2, axis=0) / (n - 1))
        half = np.where(n > 1, sp.t.ppf((1 + level) / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Paired:
    """A − B over the seeds both ran: n pairs, mean difference with its t interval, the paired
    two-sided t-test's p (H0: mean difference 0), and the differences' standard deviation."""
    n: int
    diff: float
    low: float
    high: float
    p: float
    sd: float

    def text(self, a: str, b: str) -> str:
        return (f"{a} − {b} = {self.diff:.3g} [{self.low:.3g}, {self.high:.3g}] "
                f"(95 % t, {self.n} paired seeds)")


def _t_p(stat: float, df: int) -> float:
    """Two-sided p of a t statistic; a zero-variance sample gives p 0 (nonzero mean) or 1."""
    if math.isnan(stat):
        return 1.0
    return float(2 * sp.t.sf(abs(stat), df)) if math.isfinite(stat) else 0.0


def _stat(d: np.ndarray, null: float) -> float:
    """(d̄ − null) / (s/√n), ±inf when s = 0 and d̄ ≠ null, NaN when both are 0."""
    se = d.std(ddof=1) / math.sqrt(d.size)
    gap = d.mean() - null
    if se > 0:
        return float(gap / se)
    return math.nan if gap == 0 else math.copysign(math.inf, gap)


def paired(a: pd.Series, b: pd.Series, level: float = LEVEL) -> Paired:
    """A vs B on the seeds both have a finite value for (the Series are indexed by seed)."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").astype(float)
    d = (joined.a - joined.b).to_numpy()
    d = d[np.isfinite(d)]
    if d.size < 2:
        m = float(d.mean()) if d.size else math.nan
        return Paired(int(d.size), m, m, m, math.nan, math.nan)
    mean, low, high = t_interval(d, level)
    return Paired(int(d.size), mean, low, high, _t_p(_stat(d, 0.0), d.size - 1), float(d.std(ddof=1)))


def one_sided_p(d, bound: float, greater: bool) -> float:
    """p of H0: mean(d) ≤ bound against H1: mean(d) > bound (`greater`), or of H0: ≥ bound
    against H1: < bound, by the one-sample t-test."""
    d = _finite(d)
    if d.size < 2:
        return math.nan
    stat = _stat(d, bound)
    if math.isnan(stat):
        return 1.0
    return float(sp.t.sf(stat if greater else -stat, d.size - 1))


def tost_p(d, margin: float) -> float:
    """TOST p for equivalence within ±margin: the larger of the two one-sided p's. Equivalent at
    α when below α (the 1 − 2α t interval inside the margins)."""
    return max(one_sided_p(d, -margin, greater=True), one_sided_p(d, margin, greater=False))


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p's, in the given order: the k-th smallest p times (m − k + 1),
    made monotone and capped at 1. Rejecting where the adjusted p < α keeps the family-wise error
    rate ≤ α under any dependence. NaNs (untested) stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size == 0:
        return out.tolist()
    order = idx[np.argsort(p[idx], kind="stable")]
    m, running = idx.size, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def performance_profile(costs: pd.DataFrame, taus) -> pd.DataFrame:
    """Dolan & Moré (2002) profiles. `costs`: rows = problems (tasks), columns = solvers
    (optimizers), lower is better, NaN or inf = failed. Returns rho[tau, solver]: the share of
    problems on which the solver is within a factor tau of the best solver."""
    c = costs.astype(float).replace([np.inf, -np.inf], np.nan)
    best = c.min(axis=1)
    ratios = c.div(best, axis=0).fillna(np.inf)
    rho = {tau: (ratios <= tau).mean(axis=0) for tau in taus}
    return pd.DataFrame(rho).T.rename_axis("tau")


def stable_decades(scales, ok) -> float:
    """Width in decades of the longest contiguous run of `ok` scales (0 if only one, nan if none)."""
    pairs = sorted(zip(scales, ok))
    best, start = math.nan, None
    for i, (s, good) in enumerate(pairs):
        if good:
            start = s if start is None else start
            width = math.log10(s / start)
            best = width if math.isnan(best) else max(best, width)
        else:
            start = None
    return best
