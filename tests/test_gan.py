"""The GAN's metric means what it says: the energy distance's U-statistic and its jackknife standard
error are the formulas written out, a generator that matches the data meets the target and one that
misses a mode, smears the ring or blurs the modes to 4σ does not; the mode metrics kept beside it
(coverage, modes_covered, collapsed) agree with one another on every constructed distribution.

Samples are built from fixed generators (or evenly spaced angles), so every value is the same on
each run up to the last bits of a normal draw; the margins asserted are far wider than that.
"""
import math

import pytest
import torch

import tasks
from tasks.gan import (COVER_SHARE, ENERGY_TARGET, N_EVAL, N_MODES, N_TEST, RADIUS, SIGMA, energy_distance,
                       energy_distance_and_se, generator, mode_centres, mode_stats, sample_ring)


def ring(n, radius=RADIUS, radial=0.0, seed=0):
    """n points spread uniformly in angle on a ring (optionally blurred radially)."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    r = radius + radial * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([r * angle.cos(), r * angle.sin()], 1)


def modes(n, sigma=SIGMA, weights=(1,) * N_MODES, seed=0):
    """n points from a mixture of Gaussians at the eight modes with the given weights."""
    g = torch.Generator().manual_seed(seed)
    k = torch.multinomial(torch.tensor(weights, dtype=torch.float64), n, replacement=True, generator=g)
    return mode_centres()[k] + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)


METRIC = tasks.get("gan-ring8").metric
VALIDATION_REAL = sample_ring(N_EVAL, generator(0, "gan:eval"))   # what `evaluate` compares with


def test_the_task_metric_is_the_energy_distance_lower_is_better():
    assert (METRIC.name, METRIC.direction, METRIC.target) == ("energy_distance", "min", ENERGY_TARGET)
    assert tasks.get("gan-ring8-beta1-0.9").metric == METRIC


def _brute_u(x, y) -> float:
    """The U-statistic written out: the within-sample means skip the pairs i = j."""
    n, m = len(x), len(y)
    off = lambda a: (torch.cdist(a, a).sum() - torch.cdist(a, a).diagonal().sum()) / (len(a) * (len(a) - 1))  # noqa: E731
    return float(2 * torch.cdist(x, y).sum() / (n * m) - off(x) - off(y))


def test_energy_distance_is_the_u_statistic_and_its_se_the_jackknife():
    x, y = modes(70, sigma=0.1, seed=1), sample_ring(70, generator(2, "test:real"))
    # 1e-12: float64 sums of ~5000 distances of order 1, taken in another order
    assert energy_distance(x, y) == pytest.approx(_brute_u(x, y), abs=1e-12)
    assert energy_distance(x[:50], y) == pytest.approx(_brute_u(x[:50], y), abs=1e-12)   # n != m too
    u, se = energy_distance_and_se(x, y)
    keep = torch.ones(70, dtype=torch.bool)
    without = []
    for i in range(70):       # leave out pair i, recompute from scratch
        keep[i] = False
        without.append(_brute_u(x[keep], y[keep]))
        keep[i] = True
    pseudo = 70 * u - 69 * torch.tensor(without, dtype=torch.float64)
    assert u == pytest.approx(_brute_u(x, y), abs=1e-12)
    assert se == pytest.approx(float(pseudo.std(correction=0)) / math.sqrt(70), rel=1e-9)
    # the V-statistic the task used before is above it by the within-sample means over n
    v = float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())
    assert v > u + 1 / 70
    with pytest.raises(ValueError, match="as many of each"):
        energy_distance_and_se(x[:50], y)
    assert energy_distance(torch.full((3, 2), math.nan), y) == math.inf


@pytest.mark.parametrize("seed", range(3))
def test_the_data_meet_the_target_and_a_ring_missing_or_blurred_modes_do_not(seed):
    """Against the validation's 1000 true samples: the data's distribution scores about 0 (a
    U-statistic can fall below it), 2σ blur stays within the noise, 4σ blur (0.0067-0.0095 on
    seeds 0-4), a ring (0.020-0.024) and a missing mode (0.05) stay out."""
    score = lambda x: energy_distance(x, VALIDATION_REAL)  # noqa: E731
    assert abs(score(modes(N_EVAL, seed=seed))) < 0.004
    assert METRIC.reached(score(modes(N_EVAL, seed=seed)))
    assert METRIC.reached(score(modes(N_EVAL, sigma=2 * SIGMA, seed=seed)))
    for x in (modes(N_EVAL, sigma=4 * SIGMA, seed=seed), ring(N_EVAL, seed=seed), ring(N_EVAL, radial=0.1, seed=seed),
              modes(N_EVAL, weights=(1,) * 7 + (0,), seed=seed), modes(N_EVAL, weights=(1,) + (0,) * 7, seed=seed)):
        assert not METRIC.reached(score(x))
    assert score(ring(N_EVAL, seed=seed)) > 3 * ENERGY_TARGET
    # it ranks below the target: one mode at a tenth of its mass, then seven, then two, then one
    ranked = [score(modes(N_EVAL, weights=w, seed=seed)) for w in
              ((1,) * 7 + (0.1,), (1,) * 7 + (0,), (1, 1) + (0,) * 6, (1,) + (0,) * 7)]
    assert ranked == sorted(ranked)


def test_the_held_out_estimate_of_the_data_is_near_zero_within_its_se():
    """Fresh true samples against fresh true samples at the test's size: E = 0, and the estimate
    lies within 3 jackknife standard errors of it (the jackknife is conservative there: the spread
    over replicate draws is about 0.6 of it, see the task's docstring)."""
    g = generator(0, "test:held-out")
    u, se = energy_distance_and_se(sample_ring(N_TEST, g), sample_ring(N_TEST, g))
    assert 0 < se < 0.003 and abs(u) < 3 * se


def test_no_ring_radius_or_radial_blur_covers_every_mode():
    """Coverage, kept as an extra key: a rotation-invariant distribution scores at most
    32 asin(3σ/R)/π = 0.765 for any radius (the best is sqrt(R² − 9σ²), where a 3σ disc subtends
    the largest angle). Evenly spaced angles (no sampling noise) score the expectation itself."""
    share = math.asin(3 * SIGMA / RADIUS) / math.pi               # per mode, < COVER_SHARE
    bound = share / COVER_SHARE
    assert share < COVER_SHARE and 0.76 < bound < 0.77
    angle = torch.arange(100_000, dtype=torch.float64) * (2 * math.pi / 100_000) + 0.1   # off the modes' angles
    for radius in (RADIUS - 0.1, math.sqrt(RADIUS ** 2 - 9 * SIGMA ** 2), RADIUS, RADIUS + 0.05):
        x = radius * torch.stack([angle.cos(), angle.sin()], 1)
        assert mode_stats(x)["coverage"] <= bound + 1e-3             # 1e-3: the grid's 1/100000 steps
    for radial in (0.05, 0.1, 0.3):
        assert mode_stats(ring(N_EVAL, radial=radial))["coverage"] < 1.0


CASES = {
    "data": lambda: modes(N_EVAL),
    "blurred 0.1": lambda: modes(N_EVAL, sigma=0.1),
    "blurred 0.2": lambda: modes(N_EVAL, sigma=0.2),
    "seven modes": lambda: modes(N_EVAL, weights=(1,) * 7 + (0,)),
    "one mode at a tenth": lambda: modes(N_EVAL, weights=(1,) * 7 + (0.1,)),
    "two modes": lambda: modes(N_EVAL, weights=(1, 1) + (0,) * 6),
    "one mode": lambda: modes(N_EVAL, weights=(1,) + (0,) * 7),
    "ring": lambda: ring(N_EVAL),
    "ring blurred": lambda: ring(N_EVAL, radial=0.1),
}


@pytest.mark.parametrize("case", CASES)
def test_coverage_modes_covered_and_collapsed_agree(case):
    s = mode_stats(CASES[case]())
    covered = s["coverage"] == 1.0
    assert covered == (s["modes_covered"] == N_MODES) == (s["worst_mode"] >= N_MODES * COVER_SHARE)
    expected = {"data": True, "blurred 0.1": True, "blurred 0.2": False, "seven modes": False,
                "one mode at a tenth": False, "two modes": False, "one mode": False, "ring": False,
                "ring blurred": False}
    assert covered == expected[case]
    # below full coverage it still ranks: each missing mode costs 1/8
    if case in ("seven modes", "two modes", "one mode"):
        assert math.isclose(s["coverage"], s["modes_covered"] / N_MODES, abs_tol=1e-12)


def test_the_evaluations_report_the_metric_and_keep_the_evaluated_samples():
    task = tasks.get("gan-ring8")
    p = task.build(task.size("smoke"), seed=0, device=torch.device("cpu"), dtype=torch.float32)
    keys = {"energy_distance", "coverage", "worst_mode", "modes_covered", "collapsed", "high_quality"}
    values, held_out = p.evaluate(p.model), p.test(p.model)
    assert keys <= set(values) and keys | {"n_test", "se"} <= set(held_out)
    assert held_out["n_test"] == N_TEST
    kept = p.samples(p.model)
    assert len(kept) == N_EVAL                        # the figure shows what the validation measured
    # 1e-12: the same float64 distances summed in the same order, from float32 samples cast alike
    assert math.isclose(energy_distance(kept, VALIDATION_REAL), values["energy_distance"], abs_tol=1e-12)
    assert math.isclose(mode_stats(kept)["coverage"], values["coverage"], abs_tol=1e-12)
