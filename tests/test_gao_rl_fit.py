"""Gao et al.'s RL functional form: gold(d) = gold0 + d (alpha - beta log d), its fit and its peak."""
import math

import numpy as np
import pytest

from rmcourse.overoptimization import fit_gao_rl, gao_rl_curve, peak_d_rl


@pytest.mark.parametrize("alpha, beta, gold0", [(1.2, 0.8, 3.3), (0.5, 1.5, -1.0), (2.0, 0.0, 0.0), (-0.3, 0.4, 1.0)])
def test_fit_recovers_the_parameters_of_noiseless_data(alpha, beta, gold0):
    d = np.array([0.0, 0.1, 0.4, 0.9, 1.5, 2.2, 3.0])
    gold = gao_rl_curve(d, alpha, beta, gold0)
    a, b = fit_gao_rl(d, gold, gold0)
    assert a == pytest.approx(alpha, abs=1e-8)
    assert b == pytest.approx(beta, abs=1e-8)
    # accepts lists, and the d = 0 point carries no information
    assert fit_gao_rl(list(d[1:]), list(gold[1:]), gold0) == pytest.approx((a, b), abs=1e-8)


def test_fit_is_least_squares_on_noisy_data():
    rng = np.random.default_rng(0)
    d = np.linspace(0.05, 3.0, 200)
    gold = gao_rl_curve(d, 1.0, 0.6, 2.0) + rng.normal(0, 0.05, d.size)
    a, b = fit_gao_rl(d, gold, 2.0)
    assert a == pytest.approx(1.0, abs=0.05) and b == pytest.approx(0.6, abs=0.05)
    # no other (alpha, beta) nearby has a smaller squared error
    def sse(x, y):
        return float(np.sum((gao_rl_curve(d, x, y, 2.0) - gold) ** 2))
    best = sse(a, b)
    for da in (-1e-3, 0, 1e-3):
        for db in (-1e-3, 0, 1e-3):
            assert sse(a + da, b + db) >= best - 1e-12


def test_fit_depends_on_gold0():
    d = np.array([0.5, 1.0, 2.0])
    gold = gao_rl_curve(d, 1.0, 0.5, 0.0)
    assert fit_gao_rl(d, gold, 0.0) != pytest.approx(fit_gao_rl(d, gold, 1.0))


def test_curve_values():
    assert float(gao_rl_curve(0.0, 1.0, 2.0, 3.5)) == 3.5  # gold0 at d = 0, no nan from 0 * log 0
    d = np.array([0.0, 1.0, math.e])
    np.testing.assert_allclose(gao_rl_curve(d, 1.0, 2.0, 0.5), [0.5, 1.5, 0.5 + math.e * (1.0 - 2.0)])
    # continuous at 0: d log d -> 0
    assert float(gao_rl_curve(1e-12, 1.0, 2.0, 0.5)) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("alpha, beta", [(1.2, 0.8), (0.5, 1.5), (-0.3, 0.4), (2.0, 2.0)])
def test_peak_is_the_curves_maximum(alpha, beta):
    peak = peak_d_rl(alpha, beta)
    assert peak > 0
    grid = np.linspace(1e-6, 3 * peak + 1, 400_001)
    curve = gao_rl_curve(grid, alpha, beta)
    assert peak == pytest.approx(grid[np.argmax(curve)], rel=1e-3, abs=1e-4)
    # the derivative alpha - beta (log d + 1) is zero there
    assert alpha - beta * (math.log(peak) + 1) == pytest.approx(0.0, abs=1e-9)


def test_no_peak_without_a_positive_beta():
    assert peak_d_rl(1.0, 0.0) == math.inf
    assert peak_d_rl(1.0, -0.5) == math.inf
    d = np.linspace(0.01, 50, 100)
    assert np.all(np.diff(gao_rl_curve(d, 1.0, 0.0)) > 0)


def test_fit_validation():
    with pytest.raises(ValueError, match="negative"):
        fit_gao_rl([-0.1, 0.5, 1.0], [0.0, 1.0, 1.2], 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        fit_gao_rl([0.0, 0.0, 1.0], [0.0, 0.0, 1.0], 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        fit_gao_rl([0.7], [1.0], 0.0)
    with pytest.raises(ValueError, match="equal length"):
        fit_gao_rl([0.5, 1.0], [1.0], 0.0)
    with pytest.raises(ValueError, match="1-D"):
        fit_gao_rl([[0.5, 1.0]], [[1.0, 2.0]], 0.0)
    with pytest.raises(ValueError, match="finite"):
        fit_gao_rl([0.5, np.nan, 1.0], [1.0, 2.0, 3.0], 0.0)
    with pytest.raises(ValueError, match="finite"):
        fit_gao_rl([0.5, 1.0, 2.0], [1.0, np.inf, 3.0], 0.0)
