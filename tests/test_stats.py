"""report/stats.py on synthetic data with a known truth: coverage, family-wise error, equivalence.

Each rate is estimated from N simulated experiments; its tolerance is 4 binomial standard errors,
sqrt(p (1 − p) / N), around the rate the method is designed to have (for N = 4000 and p = 0.95,
SE = 0.0034, so the coverage must lie in 0.95 ± 0.014): a correct method fails such a check about
once in 16 000 runs, a 75 %-coverage interval (the bootstrap at n = 3) fails it always.
"""
import math

import numpy as np
import pandas as pd
import pytest

from report import stats

N = 4000


def _tolerance(p, n=N, k=4.0):
    return k * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_t_interval_covers_the_mean_at_its_level(n):
    rng = np.random.default_rng(n)
    mu = 2.5
    hits = 0
    for _ in range(N):
        _, lo, hi = stats.t_interval(rng.normal(mu, 1.7, size=n))
        hits += lo <= mu <= hi
    assert abs(hits / N - 0.95) <= _tolerance(0.95)


def test_t_band_is_the_t_interval_at_every_step():
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(5, 7))
    curves[4, 5:] = np.nan   # a diverged seed's missing tail
    mean, lo, hi = stats.t_band(curves)
    for j in range(7):
        assert (mean[j], lo[j], hi[j]) == pytest.approx(stats.t_interval(curves[:, j]))


def test_paired_test_uses_the_pairing_and_holds_its_size():
    """Seeds share a large common effect (init, batches): the paired test keeps its 5 % size under
    the null and sees a shift that is small against the shared spread."""
    rng = np.random.default_rng(3)
    rejected, detected = 0, 0
    for _ in range(N):
        shared = rng.normal(0, 10, size=5)
        a, b = shared + rng.normal(0, 1, 5), shared + rng.normal(0, 1, 5)
        rejected += stats.paired(pd.Series(a), pd.Series(b)).p < 0.05
        detected += stats.paired(pd.Series(a + 3), pd.Series(b)).p < 0.05
    assert abs(rejected / N - 0.05) <= _tolerance(0.05)
    assert detected / N > 0.9


def test_holm_keeps_the_family_wise_error_rate_with_every_null_true():
    rng = np.random.default_rng(4)
    m, any_false = 15, 0
    for _ in range(N // 2):
        ps = [stats.paired(pd.Series(rng.normal(size=5)), pd.Series(rng.normal(size=5))).p for _ in range(m)]
        any_false += min(stats.holm(ps)) < 0.05
    # Holm rejects some null only if the smallest p < α/m: FWER 1 − (1 − 0.05/15)^15 = 0.0488 here
    assert any_false / (N // 2) <= 0.05 + _tolerance(0.05, N // 2)


def test_holm_is_step_down_and_monotone():
    rng = np.random.default_rng(5)
    p = rng.uniform(size=12) ** 3
    adj = np.array(stats.holm(p))
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0) and np.all(adj >= p) and np.all(adj <= 1)
    assert adj[order[0]] == pytest.approx(min(1, 12 * p[order[0]]))
    assert math.isnan(stats.holm([0.01, math.nan])[1]) and stats.holm([0.01, math.nan])[0] == pytest.approx(0.01)


def _tost_rate(true_diff, n, margin=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return sum(stats.tost_p(rng.normal(true_diff, 1.0, size=n), margin) < 0.05 for _ in range(N)) / N


def test_tost_has_power_when_equal_and_size_at_the_margin():
    # margin 1 sd at n = 10: the exact power of the 5 % TOST is 0.80 (P(|d̄| < 1 − t_{0.95,9} s/√10),
    # by the same simulation at 10^6 experiments: 0.797); at n = 12 it is 0.88
    assert _tost_rate(0.0, 10) >= 0.797 - _tolerance(0.797)
    assert _tost_rate(0.0, 12) > 0.80 + _tolerance(0.80)
    # at the margin the null holds: equivalence is declared at most 5 % of the time
    assert _tost_rate(1.0, 10, seed=1) <= 0.05 + _tolerance(0.05)
    assert _tost_rate(-1.0, 10, seed=2) <= 0.05 + _tolerance(0.05)


def test_one_sided_non_inferiority_size_at_the_margin():
    rng = np.random.default_rng(6)
    rate = sum(stats.one_sided_p(rng.normal(-1.0, 1.0, size=5), -1.0, greater=True) < 0.05 for _ in range(N)) / N
    assert abs(rate - 0.05) <= _tolerance(0.05)


def test_performance_profile_on_hand_made_table():
    costs = pd.DataFrame({"a": [10, 20, np.inf], "b": [20, 10, 30]}, index=["t1", "t2", "t3"])
    rho = stats.performance_profile(costs, [1.0, 2.0, 100.0])
    assert rho.loc[1.0, "a"] == pytest.approx(1 / 3) and rho.loc[1.0, "b"] == pytest.approx(2 / 3)
    assert rho.loc[2.0, "a"] == pytest.approx(2 / 3) and rho.loc[2.0, "b"] == pytest.approx(1.0)
    assert rho.loc[100.0, "a"] == pytest.approx(2 / 3)  # a failure never counts


def test_stable_decades():
    scales = [1e-4, 1e-2, 1, 1e2, 1e4]
    assert stats.stable_decades(scales, [True] * 5) == pytest.approx(8)
    assert stats.stable_decades(scales, [False, True, True, True, False]) == pytest.approx(4)
    assert math.isnan(stats.stable_decades(scales, [False] * 5))
