import itertools
import math

import numpy as np
import pytest

from rmcourse.overoptimization import (
    best_of_n_curve,
    best_of_n_weights,
    expected_best_of_n,
    fit_gao_bon,
    gao_bon_curve,
    kl_best_of_n,
    peak_d,
    rejection_subsample,
)


def _brute_force(proxy_row, gold_row, n):
    """Average gold of the proxy-argmax over all n-subsets; ties split evenly among the tied."""
    total = 0.0
    subsets = list(itertools.combinations(range(len(proxy_row)), n))
    for sub in subsets:
        best = max(proxy_row[i] for i in sub)
        winners = [i for i in sub if proxy_row[i] == best]
        total += np.mean([gold_row[i] for i in winners])
    return total / len(subsets)


def test_kl_formula():
    assert kl_best_of_n(1) == 0.0
    assert kl_best_of_n(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_best_of_n(16) == pytest.approx(math.log(16) - 15 / 16)
    assert np.all(np.diff(kl_best_of_n(np.arange(1, 50))) > 0)


def test_weights_sum_to_one_and_favour_the_top():
    w = best_of_n_weights(3, 7)
    assert w.sum() == pytest.approx(1.0)
    assert w[:2].tolist() == [0.0, 0.0]  # the two lowest can never be the max of 3
    assert w[-1] == pytest.approx(math.comb(6, 2) / math.comb(7, 3))
    assert best_of_n_weights(1, 5) == pytest.approx(np.full(5, 0.2))
    assert best_of_n_weights(5, 5).tolist() == [0, 0, 0, 0, 1]


def test_estimator_equals_brute_force_enumeration():
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=(4, 7))
    gold = rng.normal(size=(4, 7))
    for n in range(1, 8):
        expected = [_brute_force(p, g, n) for p, g in zip(proxy, gold)]
        assert expected_best_of_n(proxy, gold, n) == pytest.approx(expected)


def test_estimator_with_ties_matches_random_tie_breaking():
    proxy = np.array([[1.0, 2.0, 2.0, 0.5, 2.0, 1.0]])
    gold = np.array([[0.3, 1.0, -1.0, 4.0, 0.5, 2.0]])
    for n in range(1, 7):
        assert expected_best_of_n(proxy, gold, n)[0] == pytest.approx(_brute_force(proxy[0], gold[0], n))


def test_fit_recovers_alpha_beta():
    d = np.sqrt(kl_best_of_n(np.array([1, 2, 4, 8, 16, 32, 64, 128])))
    rng = np.random.default_rng(1)
    gold = gao_bon_curve(d, 1.7, 0.6, gold0=0.25) + rng.normal(0, 0.005, d.size)
    alpha, beta = fit_gao_bon(d, gold)
    assert alpha == pytest.approx(1.7, abs=0.05) and beta == pytest.approx(0.6, abs=0.05)
    assert peak_d(alpha, beta) == pytest.approx(1.7 / 1.2, rel=0.05)
    assert peak_d(1.0, 0.0) == float("inf")


def test_proxy_equal_to_gold_never_falls():
    rng = np.random.default_rng(2)
    gold = rng.normal(size=(50, 64))
    curve = best_of_n_curve(gold, gold, [1, 2, 4, 8, 16, 32, 64])
    assert np.all(np.diff(curve["gold_mean"]) >= 0)
    assert np.allclose(curve["gold_mean"], curve["proxy_mean"])


def test_spurious_tail_feature_makes_gold_peak_then_fall():
    rng = np.random.default_rng(3)
    quality = rng.normal(size=(200, 128))
    # rare padding: the proxy loves it, the gold reward dislikes it
    padding = (rng.random(quality.shape) < 0.02) * (1 + 2 * rng.exponential(size=quality.shape))
    proxy, gold = quality + padding, quality - 0.5 * padding
    curve = best_of_n_curve(proxy, gold, [1, 2, 4, 8, 16, 32, 64, 128], extras={"padding": padding})
    peak = int(curve["gold_mean"].idxmax())
    assert 0 < peak < len(curve) - 1
    assert curve["gold_mean"].iloc[-1] < curve["gold_mean"].iloc[peak] - 0.5
    assert np.all(np.diff(curve["proxy_mean"]) > 0)  # the proxy keeps "improving"
    assert curve["padding_mean"].iloc[-1] > curve["padding_mean"].iloc[0]
    alpha, beta = fit_gao_bon(curve["d"], curve["gold_mean"])
    assert alpha > 0 and beta > 0


def test_bad_inputs():
    with pytest.raises(ValueError, match=">= 1"):
        kl_best_of_n(0)
    with pytest.raises(TypeError, match="integer"):
        kl_best_of_n(2.5)
    with pytest.raises(ValueError, match="pool of at least 8"):
        best_of_n_weights(8, 4)
    with pytest.raises(ValueError, match="exceeds the pool size"):
        best_of_n_curve(np.zeros((2, 4)), np.zeros((2, 4)), [1, 8])
    with pytest.raises(ValueError, match="differ in shape"):
        best_of_n_curve(np.zeros((2, 4)), np.zeros((2, 5)), [1])
    with pytest.raises(ValueError, match=r"shape \[prompts, pool size\]"):
        expected_best_of_n(np.zeros(4), np.zeros(4), 1)
    with pytest.raises(ValueError, match="non-finite"):
        expected_best_of_n(np.array([[np.nan, 1.0]]), np.zeros((1, 2)), 1)
    with pytest.raises(ValueError, match="no point with d == 0"):
        fit_gao_bon([0.5, 1.0], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_gao_bon([0.0, 1.0], [0.0, 0.2])


def test_rejection_subsample_makes_large_values_rare():
    rng = np.random.default_rng(5)
    feature = rng.integers(0, 7, size=(50, 200)).astype(float)
    idx = rejection_subsample(feature, 0.5, 30, seed=1)
    assert idx.shape == (50, 30)
    assert np.all(np.diff(idx, axis=1) > 0)  # distinct, in pool order
    kept = np.take_along_axis(feature, idx, axis=1)
    share = np.bincount(kept.astype(int).ravel(), minlength=7) / kept.size
    assert share[0] == pytest.approx(1 / sum(0.5 ** np.arange(7)), abs=0.04)
    assert share[6] < 0.03 and share[0] > share[1] > share[2]
    with pytest.raises(ValueError, match="fewer than k=150"):
        rejection_subsample(feature, 0.5, 150)
    with pytest.raises(ValueError, match="keep_base"):
        rejection_subsample(feature, 0.0, 5)
