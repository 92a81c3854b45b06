"""Checkers for chapter 01 (Bradley-Terry). Each takes the learner's function and prints a verdict.

Every checker compares against `rmcourse.bradley_terry` / `rmcourse.losses` on several inputs,
including extreme reward gaps, and names the first thing that is wrong.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from rmcourse.bradley_terry import fit_bt, predicted_win_matrix, simulate_battles
from rmcourse.checking import check, expect

__all__ = [
    "check_bt_probability",
    "check_pairwise_loss",
    "check_bt_nll",
    "check_fit_strengths",
    "check_predicted_win_matrix",
    "check_find_cycle",
    "check_to_elo",
]


def _as_array(value: Any, what: str) -> np.ndarray:
    """Learner output -> float64 array, with a helpful message when it is not numeric."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} returned {type(value).__name__}, expected numbers") from None


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# ----------------------------------------------------------------------------------------------
def check_bt_probability(fn: Callable) -> bool:
    """Exercise: bt_probability(r1, r2) -> P(item 1 beats item 2), on torch tensors."""

    def test() -> None:
        def call(r1: float, r2: float) -> float:
            out = fn(torch.tensor(r1), torch.tensor(r2))
            expect(out is not None, "bt_probability returned None: did you forget `return`?")
            arr = _as_array(out, f"bt_probability({r1:g}, {r2:g})")
            expect(arr.size == 1, f"bt_probability({r1:g}, {r2:g}) returned shape {arr.shape}, "
                                  "expected a single probability")
            return float(arr.reshape(()))

        p = call(1.0, 0.0)
        want = math.exp(1) / (math.exp(1) + 1)
        if abs(p - (1 - want)) < 1e-4:
            raise AssertionError(f"bt_probability(1, 0) returned {_fmt(p)}: that is P(item 2 "
                                 "beats item 1); the first argument should win when r1 > r2")
        expect(abs(p - want) < 1e-4, f"bt_probability(1, 0) returned {_fmt(p)}, expected "
                                     f"exp(1)/(exp(1)+exp(0)) = {want:.4f}")
        expect(abs(call(0.0, 0.0) - 0.5) < 1e-6, "equal rewards must give probability 0.5")
        p2 = call(3.0, 2.0)
        expect(abs(p2 - want) < 1e-4, f"bt_probability(3, 2) returned {_fmt(p2)}, expected "
                                      f"{want:.4f}: only the difference r1 - r2 may matter")
        for r1, r2, target in ((1000.0, 0.0, 1.0), (0.0, 1000.0, 0.0), (1000.0, 1000.0, 0.5),
                               (-1000.0, -1000.0, 0.5)):
            got = call(r1, r2)
            expect(math.isfinite(got), f"bt_probability({r1:g}, {r2:g}) returned {got}: use a "
                   "stable form such as torch.sigmoid(r1 - r2) (exp(1000) overflows to inf)")
            expect(abs(got - target) < 1e-6, f"bt_probability({r1:g}, {r2:g}) returned "
                                             f"{_fmt(got)}, expected {target}")
        a = torch.tensor([-2.0, 0.5, 4.0])
        b = torch.tensor([1.0, 0.5, -3.0])
        out = fn(a, b)
        arr = _as_array(out, "bt_probability(tensor, tensor)")
        expect(arr.shape == (3,), f"for 3 pairs bt_probability returned shape {arr.shape}, "
                                  "expected (3,): work element-wise, no loops or .item()")
        expect(np.allclose(arr, torch.sigmoid(a - b).double().numpy(), atol=1e-6),
               f"element-wise values {np.round(arr, 4).tolist()} are wrong, expected "
               f"{np.round(torch.sigmoid(a - b).numpy(), 4).tolist()}")
        back = _as_array(fn(b, a), "bt_probability(b, a)")
        expect(np.allclose(arr + back, 1.0, atol=1e-6),
               "bt_probability(a, b) + bt_probability(b, a) must be 1")

    return check("bt_probability", test)


# ----------------------------------------------------------------------------------------------
def check_pairwise_loss(fn: Callable) -> bool:
    """Exercise: pairwise_loss(chosen, rejected, margin=None) -> mean of -logsigmoid(r_c - r_r - m)."""

    def reference(c: torch.Tensor, r: torch.Tensor, m: Any = 0.0) -> float:
        return float(-F.logsigmoid(c - r - m).mean())

    def call(c: torch.Tensor, r: torch.Tensor, m: Any = None) -> torch.Tensor:
        out = fn(c, r) if m is None else fn(c, r, margin=m)
        expect(out is not None, "pairwise_loss returned None: did you forget `return`?")
        expect(isinstance(out, torch.Tensor), f"pairwise_loss returned {type(out).__name__}: "
               "return a torch tensor so the loss can be back-propagated")
        expect(out.ndim == 0, f"pairwise_loss returned shape {tuple(out.shape)}; reduce to one "
                              "number with .mean() over pairs")
        return out

    def test() -> None:
        zeros = torch.zeros(4)
        got = float(call(zeros, zeros))
        if abs(got - 4 * math.log(2)) < 1e-5:
            raise AssertionError("you returned the sum over pairs; use the mean so the loss "
                                 "does not scale with batch size")
        expect(abs(got - math.log(2)) < 1e-5, f"with equal rewards the loss should be log 2 = "
               f"{math.log(2):.4f} (P = 0.5), got {_fmt(got)}")
        gen = torch.Generator().manual_seed(0)
        c = torch.randn(16, generator=gen) * 2
        r = torch.randn(16, generator=gen) * 2
        got = float(call(c, r))
        want = reference(c, r)
        if abs(got - reference(r, c)) < 1e-5:
            raise AssertionError("you computed -logsigmoid(r_rejected - r_chosen): the chosen "
                                 "reward must be the one pushed up")
        if abs(got - 16 * want) < 1e-4:
            raise AssertionError("you returned the sum over pairs; use the mean so the loss "
                                 "does not scale with batch size")
        expect(abs(got - want) < 1e-5, f"pairwise_loss on random rewards returned {_fmt(got)}, "
                                       f"expected -logsigmoid(r_c - r_r).mean() = {_fmt(want)}")
        shifted = float(call(c + 7.0, r + 7.0))
        expect(abs(shifted - want) < 1e-4, "adding the same constant to both rewards changed "
                                           "the loss: it must depend on r_c - r_r only")
        m = torch.rand(16, generator=gen) * 2
        got_m = float(call(c, r, m))
        want_m = reference(c, r, m)
        if abs(got_m - reference(c, r, -m)) < 1e-5 and not torch.all(m == 0):
            raise AssertionError("the margin must be SUBTRACTED: -logsigmoid(r_c - r_r - margin) "
                                 "(a pair must be won by at least the margin)")
        expect(abs(got_m - want_m) < 1e-5, f"with a margin the loss is {_fmt(got_m)}, expected "
                                           f"{_fmt(want_m)} = -logsigmoid(r_c - r_r - m).mean()")
        c_x = torch.tensor([-200.0, 200.0], requires_grad=True)
        r_x = torch.tensor([0.0, 0.0], requires_grad=True)
        out = call(c_x, r_x)
        want_x = reference(c_x.detach(), r_x.detach())
        expect(torch.isfinite(out).item(), f"for a reward gap of -200 the loss is {out.item()}: "
               "log(sigmoid(x)) underflows to log(0); use F.logsigmoid (or -F.softplus(-x))")
        expect(abs(out.item() - want_x) < 1e-3, f"for gaps [-200, 200] the loss is "
               f"{_fmt(out.item())}, expected {_fmt(want_x)}")
        expect(out.requires_grad, "the loss does not require grad, so no gradient can reach "
                                  "the rewards: do not call .item() / .detach() / numpy inside")
        out.backward()
        expect(c_x.grad is not None, "no gradient reached the chosen rewards: do not call "
                                     ".item() / .detach() / numpy inside the loss")
        expect(torch.isfinite(c_x.grad).all().item() and torch.isfinite(r_x.grad).all().item(),
               "the gradient is not finite at large reward gaps: use F.logsigmoid")

    return check("pairwise_loss", test)


# ----------------------------------------------------------------------------------------------
def _reference_nll(s: np.ndarray, ia: np.ndarray, ib: np.ndarray, y: np.ndarray) -> float:
    d = s[ia] - s[ib]
    return float(np.sum(y * np.logaddexp(0, -d) + (1 - y) * np.logaddexp(0, d)))


def check_bt_nll(fn: Callable) -> bool:
    """Exercise: bt_nll(strengths, idx_a, idx_b, y) -> summed negative log-likelihood (float)."""

    def call(s, ia, ib, y) -> float:
        out = fn(s, ia, ib, y)
        expect(out is not None, "bt_nll returned None: did you forget `return`?")
        arr = _as_array(out, "bt_nll")
        expect(arr.size == 1, f"bt_nll returned shape {arr.shape}: sum over battles to one number")
        return float(arr.reshape(()))

    def test() -> None:
        rng = np.random.default_rng(0)
        s = rng.normal(size=5)
        ia = rng.integers(5, size=40)
        ib = (ia + 1 + rng.integers(4, size=40)) % 5
        y = (rng.random(40) < 0.6).astype(float)
        got = call(s, ia, ib, y)
        want = _reference_nll(s, ia, ib, y)
        if abs(got + want) < 1e-6:
            raise AssertionError("you returned the log-likelihood; minimisers need the NEGATIVE "
                                 "log-likelihood (flip the sign)")
        if abs(got - want / 40) < 1e-6:
            raise AssertionError("you returned the mean over battles; this exercise asks for "
                                 "the sum (either has the same minimiser, but stick to the sum)")
        if abs(got - _reference_nll(s, ib, ia, y)) < 1e-6:
            raise AssertionError("y = 1 means model A won: use sigmoid(s[idx_a] - s[idx_b]) "
                                 "for P(A wins), you have it the other way round")
        expect(abs(got - want) < 1e-6, f"bt_nll returned {_fmt(got)} on random battles, "
                                       f"expected {_fmt(want)}")
        expect(abs(call(s + 5.0, ia, ib, y) - want) < 1e-6,
               "adding 5 to every strength changed the NLL: it must depend on differences only")
        y_tie = np.full(40, 0.5)
        got_tie = call(s, ia, ib, y_tie)
        want_tie = _reference_nll(s, ia, ib, y_tie)
        expect(abs(got_tie - want_tie) < 1e-6, f"with ties (y = 0.5) bt_nll returned "
               f"{_fmt(got_tie)}, expected {_fmt(want_tie)}: use y*log P(A) + (1-y)*log P(B) "
               "so a tie counts as half a win for each side")
        big = np.array([1000.0, -1000.0])
        got_big = call(big, np.array([0, 1]), np.array([1, 0]), np.array([1.0, 1.0]))
        want_big = _reference_nll(big, np.array([0, 1]), np.array([1, 0]), np.array([1.0, 1.0]))
        expect(math.isfinite(got_big), f"for strengths +-1000 bt_nll returned {got_big}: use "
               "np.logaddexp(0, -d) for -log sigmoid(d), which never overflows")
        expect(abs(got_big - want_big) < 1e-6 * want_big,
               f"for strengths +-1000 bt_nll returned {_fmt(got_big)}, expected {_fmt(want_big)}")

    return check("bt_nll", test)


def check_fit_strengths(fn: Callable) -> bool:
    """Exercise: fit_strengths(battles) -> pd.Series of mean-0 BT strengths indexed by model."""

    def test() -> None:
        truth = {"ant": 1.2, "bee": 0.4, "cat": 0.0, "dog": -0.5, "eel": -1.1}
        battles = simulate_battles(truth, 3000, seed=11, tie_prob=0.05)
        out = fn(battles)
        expect(isinstance(out, pd.Series), f"fit_strengths returned {type(out).__name__}, "
               "expected a pandas Series indexed by model name")
        expect(set(out.index) == set(truth), f"the Series index is {sorted(map(str, out.index))},"
                                             f" expected the model names {sorted(truth)}")
        values = _as_array(out.to_numpy(), "fit_strengths")
        expect(np.isfinite(values).all(), "some fitted strengths are not finite")
        expect(abs(values.mean()) < 1e-4, f"strengths have mean {values.mean():.4g}; only "
               "differences are identified, so centre them (subtract the mean)")
        ref = fit_bt(battles, l2=0.0)
        diff = (out.reindex(ref.index).astype(float) - ref).abs().max()
        flipped = (out.reindex(ref.index).astype(float) + ref).abs().max()
        if flipped < 1e-2:
            raise AssertionError("the strengths have the wrong sign: the winner's strength must "
                                 "go up")
        expect(diff < 1e-2, f"fitted strengths differ from the maximum-likelihood ones by up to "
                            f"{diff:.3f}:\n{pd.DataFrame({'yours': out, 'mle': ref}).round(3)}")

    return check("fit_strengths", test)


# ----------------------------------------------------------------------------------------------
def check_predicted_win_matrix(fn: Callable) -> bool:
    """Exercise: predicted_win_matrix(strengths: Series) -> DataFrame, [i, j] = P(i beats j)."""

    def test() -> None:
        s = pd.Series({"x": 2.0, "y": 0.0, "z": -1.5})
        out = fn(s)
        expect(isinstance(out, pd.DataFrame), f"returned {type(out).__name__}, expected a "
                                              "pandas DataFrame")
        expect(list(out.index) == list(s.index) and list(out.columns) == list(s.index),
               f"index {list(out.index)} / columns {list(out.columns)} should both be the model "
               f"names in order {list(s.index)}")
        got = _as_array(out.to_numpy(), "predicted_win_matrix")
        want = predicted_win_matrix(s).to_numpy()
        if np.allclose(got, want.T, atol=1e-6):
            raise AssertionError("entry [i, j] must be P(row i beats column j) = "
                                 "sigmoid(s_i - s_j); yours is transposed")
        expect(np.allclose(np.diag(got), 0.5), f"the diagonal is {np.diag(got).tolist()}, a model "
                                               "against itself should be 0.5")
        expect(np.allclose(got, want, atol=1e-6), f"values are wrong:\n{np.round(got, 4)}\n"
               f"expected:\n{np.round(want, 4)}")
        big = pd.Series({"a": 800.0, "b": -800.0})
        got_big = _as_array(fn(big).to_numpy(), "predicted_win_matrix")
        expect(np.isfinite(got_big).all(), "strengths of +-800 gave nan/inf: use a stable "
                                           "sigmoid of the difference (scipy.special.expit)")

    return check("predicted_win_matrix", test)


def check_find_cycle(fn: Callable) -> bool:
    """Exercise: find_cycle(win_rate: DataFrame) -> (i, j, k) with i>j>k>i (each > 0.5) or None."""

    def valid_cycle(win: pd.DataFrame, cyc: Any) -> bool:
        if not isinstance(cyc, (tuple, list)) or len(cyc) != 3:
            return False
        i, j, k = cyc
        try:
            return win.loc[i, j] > 0.5 and win.loc[j, k] > 0.5 and win.loc[k, i] > 0.5
        except KeyError:
            return False

    def test() -> None:
        rps = pd.DataFrame([[0.5, 0.8, 0.2], [0.2, 0.5, 0.8], [0.8, 0.2, 0.5]],
                           index=["rock", "scissors", "paper"],
                           columns=["rock", "scissors", "paper"])
        cyc = fn(rps)
        expect(cyc is not None, "rock-paper-scissors has a cycle (rock > scissors > paper > rock)"
                                " but find_cycle returned None")
        expect(valid_cycle(rps, cyc), f"returned {cyc!r}: expected a triple of model names "
                                      "(i, j, k) with P(i>j), P(j>k) and P(k>i) all above 0.5")
        bt = predicted_win_matrix(pd.Series({"a": 1.0, "b": 0.3, "c": -0.2, "d": -1.1}))
        got = fn(bt)
        expect(got is None, f"a Bradley-Terry win matrix is always transitive, but find_cycle "
                            f"returned {got!r}")
        names = ["m0", "m1", "m2", "m3", "m4"]
        s = np.array([2.0, 1.0, 0.0, -1.0, -2.0])
        p = 1 / (1 + np.exp(-(s[:, None] - s[None, :])))
        p[0, 4], p[4, 0] = 0.3, 0.7  # m4 beats m0: with m0 > m2 > m4 this closes a cycle
        hidden = pd.DataFrame(p, index=names, columns=names)
        cyc = fn(hidden)
        expect(cyc is not None, "this 5-model matrix has a cycle (m0 > m2 > m4 > m0) but "
                                "find_cycle returned None: check every triple")
        expect(valid_cycle(hidden, cyc), f"returned {cyc!r}, which is not a cycle in the matrix")
        with_nan = rps.copy()
        with_nan.loc["rock", "paper"] = with_nan.loc["paper", "rock"] = np.nan
        got = fn(with_nan)
        expect(got is None, f"pairs that never met (NaN) must not count as wins, but find_cycle "
                            f"returned {got!r}")

    return check("find_cycle", test)


# ----------------------------------------------------------------------------------------------
def check_to_elo(fn: Callable) -> bool:
    """Exercise: to_elo(strength) -> 400 / ln(10) * strength + 1000."""

    def test() -> None:
        def call(x: Any) -> np.ndarray:
            out = fn(x)
            expect(out is not None, "to_elo returned None: did you forget `return`?")
            return _as_array(out, f"to_elo({x!r})")

        got0 = float(call(0.0))
        expect(abs(got0 - 1000) < 1e-6, f"to_elo(0) returned {_fmt(got0)}: a strength of 0 "
                                         "(the average model) should be 1000")
        got1 = float(call(1.0))
        want1 = 400 / math.log(10) + 1000
        if abs(got1 - 1400) < 1e-6:
            raise AssertionError("to_elo(1) returned 1400: Elo puts 400 points on a factor of 10 "
                                 "in odds, and a log-odds unit is a factor e, so use 400/ln(10) "
                                 "= 173.7 points per unit")
        expect(abs(got1 - want1) < 1e-4, f"to_elo(1) returned {_fmt(got1)}, expected "
                                         f"{want1:.2f}")
        got10 = float(call(math.log(10)))
        expect(abs(got10 - 1400) < 1e-4, f"to_elo(ln 10) returned {_fmt(got10)}: 10:1 odds "
                                         "should be exactly 400 points above 1000")
        arr = np.array([-1.0, 0.5, 2.0])
        got_arr = call(arr)
        expect(got_arr.shape == (3,) and np.allclose(got_arr, arr * 400 / math.log(10) + 1000),
               f"to_elo on an array returned {np.round(got_arr, 2).tolist()}, expected "
               f"{np.round(arr * 400 / math.log(10) + 1000, 2).tolist()}")

    return check("to_elo", test)
