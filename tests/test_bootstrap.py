"""Bootstrap intervals: cover the truth, tighten when paired, refuse bad input."""
import numpy as np
import pytest

from rmcourse.bootstrap import mean_ci, paired_difference_ci


def test_mean_ci_covers_the_mean_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.random(400) < 0.7
    ci = mean_ci(x, seed=1)
    p = x.mean()
    se = np.sqrt(p * (1 - p) / x.size)
    assert ci.estimate == p and ci.low < p < ci.high
    # a bootstrap interval of a mean agrees with the normal approximation for n = 400
    assert abs(ci.low - (p - 1.96 * se)) < 0.01 and abs(ci.high - (p + 1.96 * se)) < 0.01
    assert ci == mean_ci(x, seed=1)


def test_paired_difference_is_tighter_than_separate_intervals():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(size=300)
    a = difficulty + 0.1 + 0.05 * rng.normal(size=300)
    b = difficulty + 0.05 * rng.normal(size=300)
    d = paired_difference_ci(a, b)
    assert d.excludes_zero() and d.low > 0.08
    assert (d.high - d.low) < 0.2 * (mean_ci(a).high - mean_ci(a).low)


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        mean_ci([1.0])
    with pytest.raises(ValueError, match="same units"):
        paired_difference_ci([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="n_boot"):
        mean_ci([1, 2, 3], n_boot=10)
    with pytest.raises(ValueError, match="non-finite"):
        mean_ci([1.0, float("nan")])
