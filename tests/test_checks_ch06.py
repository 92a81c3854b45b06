"""Each chapter-06 checker accepts a correct solution and rejects typical mistakes by name."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import comb

from rmcourse.checks import ch06


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --- kl_best_of_n -------------------------------------------------------------------------------
def test_kl_best_of_n(capsys):
    ok, out = verdict(ch06.check_kl_best_of_n, lambda n: math.log(n) - (n - 1) / n, capsys)
    assert ok and out.startswith("✅")
    ok, out = verdict(ch06.check_kl_best_of_n, lambda n: math.log(n), capsys)
    assert not ok and "subtracts (n - 1) / n" in out
    ok, out = verdict(ch06.check_kl_best_of_n, lambda n: math.log(n) - (n - 1), capsys)
    assert not ok and "subtracted n - 1" in out
    ok, out = verdict(ch06.check_kl_best_of_n, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- expected_best_of_n -------------------------------------------------------------------------
def good_bon(proxy, gold, n):
    k = len(proxy)
    g = gold[np.argsort(proxy)]
    i = np.arange(1, k + 1)
    w = comb(i - 1, n - 1) / comb(k, n)
    return float(w @ g)


def test_expected_best_of_n(capsys):
    ok, out = verdict(ch06.check_expected_best_of_n, good_bon, capsys)
    assert ok and out.startswith("✅")

    def descending(proxy, gold, n):
        k = len(proxy)
        g = gold[np.argsort(-proxy)]
        i = np.arange(1, k + 1)
        return float(comb(i - 1, n - 1) / comb(k, n) @ g)

    ok, out = verdict(ch06.check_expected_best_of_n, descending, capsys)
    assert not ok and "ascending" in out

    def off_by_one(proxy, gold, n):
        k = len(proxy)
        g = gold[np.argsort(proxy)]
        i = np.arange(1, k + 1)
        w = comb(i, n - 1)
        return float(w / w.sum() @ g)

    ok, out = verdict(ch06.check_expected_best_of_n, off_by_one, capsys)
    assert not ok and "C(i-1, n-1)" in out


# --- combine_rewards ----------------------------------------------------------------------------
def good_combine(m, method="mean", lam=1.0):
    if method == "mean":
        return m.mean(0)
    if method == "worst":
        return m.min(0).values
    return m.mean(0) - lam * m.var(0, unbiased=False)


def test_combine_rewards(capsys):
    ok, out = verdict(ch06.check_combine_rewards, good_combine, capsys)
    assert ok and out.startswith("✅")

    def maxi(m, method="mean", lam=1.0):
        return m.max(0).values if method == "worst" else good_combine(m, method, lam)

    ok, out = verdict(ch06.check_combine_rewards, maxi, capsys)
    assert not ok and "minimum" in out

    def std(m, method="mean", lam=1.0):
        if method == "uncertainty":
            return m.mean(0) - lam * m.std(0, unbiased=False)
        return good_combine(m, method, lam)

    ok, out = verdict(ch06.check_combine_rewards, std, capsys)
    assert not ok and "variance" in out

    def wrong_dim(m, method="mean", lam=1.0):
        return m.mean(1) if method == "mean" else good_combine(m, method, lam)

    ok, out = verdict(ch06.check_combine_rewards, wrong_dim, capsys)
    assert not ok and "shape" in out


# --- uncertainty_weighted_pair_loss -------------------------------------------------------------
def good_weighted(c, r):
    w = (1.0 / (1.0 + c.var(0, unbiased=False) + r.var(0, unbiased=False))).detach()
    return (w * -F.logsigmoid(c.mean(0) - r.mean(0))).mean()


def test_uncertainty_weighted_pair_loss(capsys):
    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss, good_weighted, capsys)
    assert ok and out.startswith("✅")

    def seed(c, r):
        w = 1.0 / (1.0 + c.var(0) + r.var(0))
        loss = F.binary_cross_entropy_with_logits(c.mean(0) - r.mean(0), torch.ones(c.shape[1]))
        return (loss * w).mean()

    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss, seed, capsys)
    assert not ok and "reduction" in out

    def attached(c, r):
        w = 1.0 / (1.0 + c.var(0, unbiased=False) + r.var(0, unbiased=False))
        return (w * -F.logsigmoid(c.mean(0) - r.mean(0))).mean()

    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss, attached, capsys)
    assert not ok and ".detach()" in out

    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss,
                      lambda c, r: good_weighted(c, r).item(), capsys)
    assert not ok and "connected" in out


# --- fit_gao_bon --------------------------------------------------------------------------------
def good_fit(d, gold):
    d, gold = np.asarray(d), np.asarray(gold)
    y = gold - gold[d == 0].mean()
    (a, b), *_ = np.linalg.lstsq(np.column_stack([d, -d ** 2]), y, rcond=None)
    return a, b


def test_fit_gao_bon(capsys):
    ok, out = verdict(ch06.check_fit_gao_bon, good_fit, capsys)
    assert ok and out.startswith("✅")

    def sign(d, gold):
        a, b = good_fit(d, gold)
        return a, -b

    ok, out = verdict(ch06.check_fit_gao_bon, sign, capsys)
    assert not ok and "wrong sign" in out

    def no_offset(d, gold):
        d, gold = np.asarray(d), np.asarray(gold)
        (a, b), *_ = np.linalg.lstsq(np.column_stack([d, -d ** 2]), gold, rcond=None)
        return a, b

    ok, out = verdict(ch06.check_fit_gao_bon, no_offset, capsys)
    assert not ok and "d = 0" in out
