import math

import numpy as np
import pandas as pd
import pytest

from report import stats


def test_bootstrap_ci_contains_mean_and_is_reproducible():
    x = [1.0, 2.0, 3.0, 4.0, 10.0]
    mean, lo, hi = stats.bootstrap_ci(x)
    assert mean == pytest.approx(4.0) and lo < mean < hi
    assert stats.bootstrap_ci(x) == (mean, lo, hi)
    assert stats.bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([float("nan")]))


def test_bootstrap_ci_coverage_on_normal_data():
    rng = np.random.default_rng(1)
    hits = sum(lo <= 0 <= hi for lo, hi in
               (stats.bootstrap_ci(rng.normal(size=30), n_boot=500, seed=i)[1:] for i in range(200)))
    assert 0.85 <= hits / 200 <= 0.99


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
