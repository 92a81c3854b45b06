"""Each chapter-01 checker must accept a correct solution and reject typical mistakes by name."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize
from scipy.special import expit

from rmcourse.checks import ch01


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


# --- bt_probability -----------------------------------------------------------------------------
def test_bt_probability_checker(capsys):
    ok, out = verdict(ch01.check_bt_probability, lambda a, b: torch.sigmoid(a - b), capsys)
    assert ok and out.startswith("✅")

    naive = lambda a, b: torch.exp(a) / (torch.exp(a) + torch.exp(b))  # noqa: E731
    ok, out = verdict(ch01.check_bt_probability, naive, capsys)
    assert not ok and "returned nan" in out and "torch.sigmoid" in out

    ok, out = verdict(ch01.check_bt_probability, lambda a, b: torch.sigmoid(b - a), capsys)
    assert not ok and "P(item 2 beats item 1)" in out

    ok, out = verdict(ch01.check_bt_probability, lambda a, b: torch.sigmoid(a) , capsys)
    assert not ok and "only the difference" in out

    def loop(a, b):
        return torch.sigmoid(a.reshape(-1)[0] - b.reshape(-1)[0])

    ok, out = verdict(ch01.check_bt_probability, loop, capsys)
    assert not ok and "expected (3,)" in out

    def todo(a, b):
        raise NotImplementedError("Exercise 1")

    ok, out = verdict(ch01.check_bt_probability, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- pairwise_loss ------------------------------------------------------------------------------
def good_loss(c, r, margin=None):
    m = 0.0 if margin is None else margin
    return -F.logsigmoid(c - r - m).mean()


@pytest.mark.parametrize(
    "fn,fragment",
    [
        (lambda c, r, margin=None: -F.logsigmoid(r - c).mean(), "r_rejected - r_chosen"),
        (lambda c, r, margin=None: -F.logsigmoid(c - r).sum(), "sum over pairs"),
        (lambda c, r, margin=None: -F.logsigmoid(c - r + (0 if margin is None else margin)).mean(),
         "SUBTRACTED"),
        (lambda c, r, margin=None: -F.logsigmoid(c - r).mean(), "with a margin"),
        (lambda c, r, margin=None: -torch.log(torch.sigmoid(c - r - (0 if margin is None else
                                                                       margin))).mean(),
         "logsigmoid"),
        (lambda c, r, margin=None: float(-F.logsigmoid(c - r).mean()), "torch tensor"),
        (lambda c, r, margin=None: -F.logsigmoid(c - r - (0 if margin is None else margin)),
         ".mean()"),
    ],
)
def test_pairwise_loss_checker_rejects(fn, fragment, capsys):
    ok, out = verdict(ch01.check_pairwise_loss, fn, capsys)
    assert not ok and out.startswith("❌") and fragment in out


def test_pairwise_loss_checker_accepts(capsys):
    ok, out = verdict(ch01.check_pairwise_loss, good_loss, capsys)
    assert ok, out
    bce = lambda c, r, margin=None: F.binary_cross_entropy_with_logits(  # noqa: E731
        c - r - (0 if margin is None else margin), torch.ones_like(c))
    assert verdict(ch01.check_pairwise_loss, bce, capsys)[0]


def test_pairwise_loss_checker_detaching_loses_gradient(capsys):
    def detached(c, r, margin=None):
        m = 0.0 if margin is None else margin
        return -F.logsigmoid((c - r - m).detach()).mean()

    ok, out = verdict(ch01.check_pairwise_loss, detached, capsys)
    assert not ok and "gradient" in out


# --- bt_nll and fit_strengths -------------------------------------------------------------------
def good_nll(s, ia, ib, y):
    d = s[ia] - s[ib]
    return float(np.sum(y * np.logaddexp(0, -d) + (1 - y) * np.logaddexp(0, d)))


@pytest.mark.parametrize(
    "fn,fragment",
    [
        (lambda s, ia, ib, y: -good_nll(s, ia, ib, y), "NEGATIVE"),
        (lambda s, ia, ib, y: good_nll(s, ia, ib, y) / len(y), "mean over battles"),
        (lambda s, ia, ib, y: good_nll(s, ib, ia, y), "other way round"),
        (lambda s, ia, ib, y: good_nll(s, ia, ib, np.round(y + 0.01)), "ties"),
        (lambda s, ia, ib, y: float(-np.sum(y * np.log(expit(s[ia] - s[ib])) + (1 - y) * np.log(
            expit(s[ib] - s[ia])))), "logaddexp"),
    ],
)
def test_bt_nll_checker_rejects(fn, fragment, capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log(0) in the deliberately naive version
        ok, out = verdict(ch01.check_bt_nll, fn, capsys)
    assert not ok and fragment in out, out


def test_bt_nll_checker_accepts(capsys):
    ok, out = verdict(ch01.check_bt_nll, good_nll, capsys)
    assert ok, out


def _fit(battles, center=True, sign=1.0):
    names = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    idx = {m: i for i, m in enumerate(names)}
    ia = battles["model_a"].map(idx).to_numpy()
    ib = battles["model_b"].map(idx).to_numpy()
    y = battles["winner"].map({"a": 1.0, "b": 0.0, "tie": 0.5}).to_numpy()
    s = minimize(good_nll, np.zeros(len(names)), args=(ia, ib, y), method="BFGS").x
    s = s - s.mean() if center else s + 3.0
    return pd.Series(sign * s, index=names)


def test_fit_strengths_checker(capsys):
    ok, out = verdict(ch01.check_fit_strengths, _fit, capsys)
    assert ok, out
    ok, out = verdict(ch01.check_fit_strengths, lambda b: _fit(b, center=False), capsys)
    assert not ok and "centre" in out
    ok, out = verdict(ch01.check_fit_strengths, lambda b: _fit(b, sign=-1.0), capsys)
    assert not ok and "wrong sign" in out
    ok, out = verdict(ch01.check_fit_strengths, lambda b: _fit(b).to_numpy(), capsys)
    assert not ok and "pandas Series" in out

    def ignores_ties(b):
        return _fit(b[b["winner"] != "tie"])

    ok, out = verdict(ch01.check_fit_strengths, ignores_ties, capsys)
    assert not ok and "differ from the maximum-likelihood" in out


# --- win matrices and cycles --------------------------------------------------------------------
def good_matrix(s):
    v = s.to_numpy()
    return pd.DataFrame(expit(v[:, None] - v[None, :]), index=s.index, columns=s.index)


def test_predicted_win_matrix_checker(capsys):
    assert verdict(ch01.check_predicted_win_matrix, good_matrix, capsys)[0]
    ok, out = verdict(ch01.check_predicted_win_matrix, lambda s: good_matrix(s).T, capsys)
    assert not ok and "transposed" in out

    def naive(s):
        e = np.exp(s.to_numpy())
        return pd.DataFrame(e[:, None] / (e[:, None] + e[None, :]), index=s.index,
                            columns=s.index)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok, out = verdict(ch01.check_predicted_win_matrix, naive, capsys)
    assert not ok and "stable" in out
    ok, out = verdict(ch01.check_predicted_win_matrix, lambda s: good_matrix(s).to_numpy(),
                      capsys)
    assert not ok and "DataFrame" in out


def good_cycle(win):
    for i, j, k in itertools.permutations(win.index, 3):
        if win.loc[i, j] > 0.5 and win.loc[j, k] > 0.5 and win.loc[k, i] > 0.5:
            return (i, j, k)
    return None


def test_find_cycle_checker(capsys):
    assert verdict(ch01.check_find_cycle, good_cycle, capsys)[0]
    ok, out = verdict(ch01.check_find_cycle, lambda w: None, capsys)
    assert not ok and "returned None" in out
    ok, out = verdict(ch01.check_find_cycle, lambda w: tuple(w.index[:3]), capsys)
    assert not ok and "always transitive" in out

    def adjacent_only(win):  # only consecutive triples: misses m0 > m2 > m4 > m0
        names = list(win.index)
        for a in range(len(names) - 2):
            i, j, k = names[a], names[a + 1], names[a + 2]
            for x, y, z in ((i, j, k), (k, j, i)):
                if win.loc[x, y] > 0.5 and win.loc[y, z] > 0.5 and win.loc[z, x] > 0.5:
                    return (x, y, z)
        return None

    ok, out = verdict(ch01.check_find_cycle, adjacent_only, capsys)
    assert not ok and "check every triple" in out

    def nan_as_win(win):
        for i, j, k in itertools.permutations(win.index, 3):
            if not win.loc[i, j] <= 0.5 and not win.loc[j, k] <= 0.5 and not win.loc[k, i] <= 0.5:
                return (i, j, k)
        return None

    ok, out = verdict(ch01.check_find_cycle, nan_as_win, capsys)
    assert not ok and "NaN" in out


# --- to_elo -------------------------------------------------------------------------------------
def test_to_elo_checker(capsys):
    assert verdict(ch01.check_to_elo, lambda s: 400 / math.log(10) * np.asarray(s) + 1000,
                   capsys)[0]
    ok, out = verdict(ch01.check_to_elo, lambda s: 400 * np.asarray(s) + 1000, capsys)
    assert not ok and "400/ln(10)" in out
    ok, out = verdict(ch01.check_to_elo, lambda s: 400 / math.log(10) * np.asarray(s), capsys)
    assert not ok and "1000" in out
    ok, out = verdict(ch01.check_to_elo, lambda s: 400 / math.log(2) * np.asarray(s) + 1000,
                      capsys)
    assert not ok and "to_elo(1)" in out

    def scalar_only(s):
        return 400 / math.log(10) * float(s) + 1000

    ok, out = verdict(ch01.check_to_elo, scalar_only, capsys)
    assert not ok and "❌" in out
