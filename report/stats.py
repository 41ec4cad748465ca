"""Statistics the report uses: bootstrap confidence intervals and Dolan–Moré performance profiles."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd


def bootstrap_ci(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap of the mean. Fixed seed, so the report is byte-stable.
    With one value the interval is that value; with none, NaNs."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    if x.size == 1:
        return (float(x[0]),) * 3
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(x.mean()), float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def bootstrap_band(curves, level: float = 0.95, n_boot: int = 1000, seed: int = 0):
    """(mean, low, high) per column of ``curves`` [seeds, steps]: the percentile bootstrap of the
    mean over seeds at every step at once (one resampling of seeds shared by all steps, as curves
    are resampled whole). NaNs (a diverged run's missing tail) are left out of each step's mean."""
    x = np.asarray(curves, dtype=float)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN steps give NaN, as they should
        mean = np.nanmean(x, axis=0)
        if x.shape[0] == 1:
            return mean, mean, mean
        rng = np.random.default_rng(seed)
        means = np.nanmean(x[rng.integers(0, x.shape[0], size=(n_boot, x.shape[0]))], axis=1)
        alpha = (1 - level) / 2
        return mean, np.nanquantile(means, alpha, axis=0), np.nanquantile(means, 1 - alpha, axis=0)


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
