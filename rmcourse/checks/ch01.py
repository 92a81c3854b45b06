"""Checkers for chapter 01 (Bradley-Terry). Each takes the learner's function and prints a verdict.

Every checker compares against `rmcourse.bradley_terry` / `rmcourse.linear_reward` on several
inputs, including extreme strengths, and names the typical mistake it recognises first.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit

from rmcourse.bradley_terry import (
    bootstrap_leaderboard,
    fit_bt,
    plackett_luce_nll,
    predicted_win_matrix,
    simulate_battles,
)
from rmcourse.checking import check, expect
from rmcourse.linear_reward import fit_linear_bt

__all__ = [
    "check_bt_nll_and_grad",
    "check_fit_strengths",
    "check_plackett_luce_nll",
    "check_bootstrap_ci",
    "check_linear_reward",
    "check_find_cycle",
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
    return f"{x:.8g}"


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one torch thread is faster, and on a busy 2-core machine two threads wait
    on each other (a 2000-pair linear fit took 8 s with two threads, 0.1 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# Exercise 1: the negative log-likelihood with ties, and its gradient
# ----------------------------------------------------------------------------------------------
def _nll(s: np.ndarray, ia: np.ndarray, ib: np.ndarray, y: np.ndarray) -> float:
    d = s[ia] - s[ib]
    return float(np.sum(y * np.logaddexp(0, -d) + (1 - y) * np.logaddexp(0, d)))


def _grad(s: np.ndarray, ia: np.ndarray, ib: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = expit(s[ia] - s[ib]) - y  # d NLL / d s_a for each battle; model b gets the opposite
    return np.bincount(ia, g, minlength=len(s)) - np.bincount(ib, g, minlength=len(s))


def _grad_buffered(s: np.ndarray, ia: np.ndarray, ib: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The classic bug: grad[idx] += g keeps only one battle per repeated index."""
    g = expit(s[ia] - s[ib]) - y
    out = np.zeros(len(s))
    out[ia] += g
    out[ib] -= g
    return out


def check_bt_nll_and_grad(fn: Callable) -> bool:
    """Exercise 1: bt_nll_and_grad(s, idx_a, idx_b, y) -> (summed NLL: float, gradient: array)."""

    def call(s, ia, ib, y) -> tuple[float, np.ndarray]:
        out = fn(s.copy(), ia, ib, y)
        expect(out is not None, "bt_nll_and_grad returned None: did you forget `return`?")
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               f"bt_nll_and_grad returned {type(out).__name__}; return a pair (nll, grad)")
        nll = _as_array(out[0], "the NLL")
        expect(nll.size == 1, f"the NLL has shape {nll.shape}: sum over battles to one number")
        grad = _as_array(out[1], "the gradient")
        expect(grad.shape == s.shape, f"the gradient has shape {grad.shape}, expected "
               f"{s.shape}: one partial derivative per model")
        return float(nll.reshape(())), grad

    def test() -> None:
        rng = np.random.default_rng(0)
        n_models, n = 5, 60  # 60 battles among 5 models: every model appears many times
        s = rng.normal(size=n_models)
        ia = rng.integers(n_models, size=n)
        ib = (ia + 1 + rng.integers(n_models - 1, size=n)) % n_models
        y = np.where(rng.random(n) < 0.15, 0.5, (rng.random(n) < 0.6).astype(float))
        nll, grad = call(s, ia, ib, y)
        want = _nll(s, ia, ib, y)
        # float32 arithmetic is a correct answer too: its rounding on a sum of 60 terms is about
        # 1e-6 relative, far below any of the mistakes named below (each moves the NLL by > 1).
        tol = 1e-5 * max(1.0, abs(want))
        if abs(nll + want) < tol:
            raise AssertionError("you returned the log-likelihood; a minimiser needs the "
                                 "NEGATIVE log-likelihood (flip the sign)")
        if abs(nll - want / n) < tol:
            raise AssertionError("you returned the mean over battles; this exercise asks for "
                                 "the sum (same minimiser, but the gradient must match it)")
        if abs(nll - _nll(s, ib, ia, y)) < tol:
            raise AssertionError("y = 1 means model A won: P(A wins) = sigmoid(s[idx_a] - "
                                 "s[idx_b]); you have it the other way round")
        ties = y == 0.5
        if abs(nll - _nll(s[:], ia[~ties], ib[~ties], y[~ties])) < tol:
            raise AssertionError("ties (y = 0.5) contribute nothing in your NLL: a tie is half "
                                 "a win for each side, y*(-log P(A)) + (1-y)*(-log P(B))")
        for side, value in (("A", 1.0), ("B", 0.0)):
            if abs(nll - _nll(s, ia, ib, np.where(ties, value, y))) < tol:
                raise AssertionError(f"your NLL counts a tie (y = 0.5) as a win for model {side}: a tie "
                                     "is half a win for each side, y*(-log P(A)) + (1-y)*(-log P(B)) "
                                     "with y = 0.5 (a test like `y > 0` or `y >= 0.5` rounds it)")
        expect(abs(nll - want) < tol, f"the NLL is {_fmt(nll)} on random battles with ties, "
               f"expected {_fmt(want)}")

        g_want = _grad(s, ia, ib, y)
        if np.allclose(grad, -g_want, atol=1e-5):
            raise AssertionError("your gradient has the wrong sign: that is the gradient of the "
                                 "log-likelihood. d NLL / d s_a = sigmoid(s_a - s_b) - y")
        if np.allclose(grad, _grad_buffered(s, ia, ib, y), atol=1e-5):
            raise AssertionError("a model that plays several battles gets only ONE battle's "
                                 "gradient: `grad[idx_a] += g` does not accumulate repeated "
                                 "indices. Use np.add.at or np.bincount(idx, weights, minlength)")
        only_a = np.bincount(ia, expit(s[ia] - s[ib]) - y, minlength=n_models)
        if np.allclose(grad, only_a, atol=1e-5):
            raise AssertionError("only model A's strength gets a gradient; every battle also "
                                 "moves model B, by the opposite amount")
        if np.allclose(grad, g_want / n, rtol=1e-4, atol=1e-7):
            raise AssertionError("your gradient is the mean's (divided by the number of "
                                 "battles) while the NLL is the sum: they must match")
        expect(abs(grad.sum()) < 1e-4, f"the gradient sums to {grad.sum():.4g}; it must sum to 0 "
               "(adding a constant to every strength changes nothing)")
        expect(np.allclose(grad, g_want, atol=1e-5), f"gradient {np.round(grad, 4).tolist()} is "
               f"wrong, expected {np.round(g_want, 4).tolist()}")

        nll5, grad5 = call(s + 5.0, ia, ib, y)
        expect(abs(nll5 - want) < tol, "adding 5 to every strength changed the NLL: it must "
               "depend on differences only")
        big = np.array([1000.0, -1000.0])
        ia2, ib2, y2 = np.array([0, 1]), np.array([1, 0]), np.array([1.0, 1.0])
        nll_big, grad_big = call(big, ia2, ib2, y2)
        want_big = _nll(big, ia2, ib2, y2)
        expect(math.isfinite(nll_big), f"for strengths +-1000 the NLL is {nll_big}: -log "
               "sigmoid(d) must be computed without exp overflow (np.logaddexp(0, -d))")
        expect(abs(nll_big - want_big) < 1e-5 * want_big, f"for strengths +-1000 the NLL is "
               f"{_fmt(nll_big)}, expected {_fmt(want_big)}")
        expect(np.isfinite(grad_big).all(), "for strengths +-1000 the gradient is not finite: "
               "use scipy.special.expit for the sigmoid")

    return check("bt_nll_and_grad", test)


# ----------------------------------------------------------------------------------------------
# Exercise 2: fit the strengths with hand-written Newton (or gradient) steps
# ----------------------------------------------------------------------------------------------
def _encode(battles: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    names = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    idx = {m: i for i, m in enumerate(names)}
    y = battles["winner"].map({"a": 1.0, "b": 0.0, "tie": 0.5}).to_numpy()
    return names, battles["model_a"].map(idx).to_numpy(), battles["model_b"].map(idx).to_numpy(), y


def check_fit_strengths(fn: Callable) -> bool:
    """Exercise 2: fit_strengths(battles) -> pd.Series of mean-0 BT strengths indexed by model."""

    def test() -> None:
        truth = {"ant": 1.2, "bee": 0.4, "cat": 0.0, "dog": -0.5, "eel": -1.1}
        battles = simulate_battles(truth, 3000, seed=11, tie_prob=0.1)
        try:
            out = fn(battles.copy())
        except np.linalg.LinAlgError as err:
            raise AssertionError(f"LinAlgError ({err}): the Hessian is singular, because adding "
                                 "the same constant to every strength changes nothing. Solve "
                                 "with np.linalg.lstsq / pinv, add a tiny ridge, or pin one "
                                 "strength to 0") from None
        expect(isinstance(out, pd.Series), f"fit_strengths returned {type(out).__name__}, "
               "expected a pandas Series indexed by model name")
        expect(set(out.index) == set(truth), f"the Series index is {sorted(map(str, out.index))},"
                                             f" expected the model names {sorted(truth)}")
        values = _as_array(out.to_numpy(), "fit_strengths")
        expect(np.isfinite(values).all(), "some fitted strengths are not finite: a Newton step "
               "with a singular Hessian, or a step size that diverged?")
        expect(abs(values.mean()) < 1e-4, f"strengths have mean {values.mean():.4g}; only "
               "differences are identified, so centre them (subtract the mean)")
        ref = fit_bt(battles, l2=0.0)
        mine = out.reindex(ref.index).astype(float)
        if (mine + ref).abs().max() < 1e-2:
            raise AssertionError("the strengths have the wrong sign: the winner's strength must "
                                 "go up (step AGAINST the gradient of the NLL)")
        dropped = fit_bt(battles[battles["winner"] != "tie"], l2=0.0)
        if (mine - dropped).abs().max() < 1e-3:
            raise AssertionError("you dropped the tied battles; count a tie as half a win for "
                                 "each side (y = 0.5)")
        as_win = fit_bt(battles.replace({"winner": {"tie": "a"}}), l2=0.0)
        if (mine - as_win).abs().max() < 1e-3:
            raise AssertionError("you counted a tie as a win for model A; a tie is y = 0.5")
        names, ia, ib, y = _encode(battles)
        grad = _grad(mine.reindex(names).to_numpy(), ia, ib, y) / len(battles)
        diff = float((mine - ref).abs().max())
        if np.abs(grad).max() > 1e-5 and diff > 1e-3:
            raise AssertionError(f"not converged: the NLL's gradient per battle is still "
                                 f"{np.abs(grad).max():.2e} at your strengths (off by up to "
                                 f"{diff:.3f}). Take more steps: Newton needs a handful, plain "
                                 "gradient descent hundreds")
        expect(diff < 1e-3, f"fitted strengths differ from the maximum-likelihood ones by up to "
                            f"{diff:.4f}:\n{pd.DataFrame({'yours': mine, 'mle': ref}).round(4)}")

    return check("fit_strengths", test)


# ----------------------------------------------------------------------------------------------
# Exercise 3: Plackett-Luce for a K-wise ranking
# ----------------------------------------------------------------------------------------------
def _all_pairs(r: torch.Tensor, ranking: torch.Tensor, mean: bool) -> float:
    ordered = r[ranking]
    k = len(ordered)
    losses = [float(-F.logsigmoid(ordered[i] - ordered[j])) for i in range(k) for j in range(i + 1, k)]
    return float(np.mean(losses) if mean else np.sum(losses))


def check_plackett_luce_nll(fn: Callable) -> bool:
    """Exercise 3: plackett_luce_nll(rewards[K], ranking[K] best first) -> 0-d tensor."""

    def call(r: torch.Tensor, ranking: torch.Tensor) -> torch.Tensor:
        with _one_thread():
            out = fn(r, ranking.clone())
        expect(out is not None, "plackett_luce_nll returned None: did you forget `return`?")
        expect(isinstance(out, torch.Tensor), f"plackett_luce_nll returned {type(out).__name__};"
               " return a torch tensor so the loss can be back-propagated")
        expect(out.numel() == 1, f"plackett_luce_nll returned shape {tuple(out.shape)}: sum the "
               "stages to one number")
        return out.reshape(())

    def test() -> None:
        pair = torch.tensor([0.5, -0.3])
        got2 = float(call(pair, torch.tensor([0, 1])))
        if abs(got2 - float(-F.logsigmoid(pair[1] - pair[0]))) < 1e-5:
            raise AssertionError("ranking [0, 1] means item 0 is best; your loss treats item 1 as "
                                 "the winner (ranking lists item indices best first)")
        expect(abs(got2 - float(-F.logsigmoid(pair[0] - pair[1]))) < 1e-5,
               f"for K = 2 Plackett-Luce is -log sigmoid(r_w - r_l) = "
               f"{float(-F.logsigmoid(pair[0] - pair[1])):.4f}; got {_fmt(got2)}")

        r = torch.tensor([1.0, -0.5, 0.3, 2.0])
        ranking = torch.tensor([3, 0, 2, 1])
        got = float(call(r, ranking))
        want = float(plackett_luce_nll(r, ranking))
        k = len(r)
        whole = float(-(r[ranking] - torch.logsumexp(r, 0))[:-1].sum())
        whole_all = float(-(r[ranking] - torch.logsumexp(r, 0)).sum())
        if min(abs(got - whole), abs(got - whole_all)) < 1e-5:
            raise AssertionError("every stage uses all K items in the denominator; at stage k "
                                 "only the items not placed yet compete (logsumexp over "
                                 "ranking[k:])")
        if abs(got - float(plackett_luce_nll(r, ranking.flip(0)))) < 1e-5:
            raise AssertionError("you read the ranking worst first; ranking[0] is the BEST item")
        inverse = torch.argsort(ranking)
        if abs(got - float(plackett_luce_nll(r, inverse))) < 1e-5:
            raise AssertionError("ranking[k] is the index of the item placed k-th, not the rank "
                                 "of item k (you used the inverse permutation)")
        if abs(got - _all_pairs(r, ranking, mean=False)) < 1e-5 or \
                abs(got - _all_pairs(r, ranking, mean=True)) < 1e-5:
            raise AssertionError("that is InstructGPT's all-pairs loss (-log sigmoid over every "
                                 "pair of the ranking), a different likelihood; Plackett-Luce "
                                 "picks the best of the remaining items, stage by stage")
        if abs(got - want / (k - 1)) < 1e-5:
            raise AssertionError("you averaged over stages; -log P(ranking) is the SUM of the "
                                 "stages' -log probabilities")
        expect(abs(got - want) < 1e-5, f"for rewards {r.tolist()} and ranking {ranking.tolist()}"
               f" the NLL is {_fmt(got)}, expected {_fmt(want)}")
        shifted = float(call(r + 7.0, ranking))
        expect(abs(shifted - want) < 1e-4, "adding 7 to every reward changed the NLL: "
               "Plackett-Luce depends on differences only")
        big = torch.tensor([1000.0, -1000.0, 500.0], requires_grad=True)
        out = call(big, torch.tensor([2, 0, 1]))
        want_big = float(plackett_luce_nll(big.detach(), torch.tensor([2, 0, 1])))
        expect(torch.isfinite(out).item(), f"for rewards of +-1000 the NLL is {out.item()}: "
               "log(sum(exp(...))) overflows; use torch.logsumexp")
        expect(abs(out.item() - want_big) < 1e-3 * max(1.0, want_big),
               f"for rewards of +-1000 the NLL is {_fmt(out.item())}, expected {_fmt(want_big)}")
        expect(out.requires_grad, "the result does not require grad: do not call .item() / "
               ".detach() / numpy inside, the loss must train the rewards")
        out.backward()
        expect(big.grad is not None and torch.isfinite(big.grad).all().item(),
               "no finite gradient reached the rewards")

    return check("plackett_luce_nll", test)


# ----------------------------------------------------------------------------------------------
# Exercise 4: bootstrap confidence intervals for an arena
# ----------------------------------------------------------------------------------------------
def check_bootstrap_ci(fn: Callable) -> bool:
    """Exercise 4: bootstrap_ci(battles, n_boot, seed) -> DataFrame[model -> ci_low, ci_high]."""
    truth = {"ant": 1.2, "bee": 0.5, "cat": 0.0, "dog": -0.6, "eel": -1.1}

    def call(battles: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
        out = fn(battles.copy(), n_boot=n_boot, seed=seed)
        expect(isinstance(out, pd.DataFrame), f"bootstrap_ci returned {type(out).__name__}, "
               "expected a pandas DataFrame indexed by model")
        for col in ("ci_low", "ci_high"):
            expect(col in out.columns, f"missing column {col!r}; got {list(out.columns)}")
        expect(set(out.index) == set(truth), f"the index is {sorted(map(str, out.index))}, "
               f"expected the model names {sorted(truth)}")
        table = out.reindex(sorted(truth))[["ci_low", "ci_high"]].astype(float)
        expect(np.isfinite(table.to_numpy()).all(), "some interval ends are not finite")
        expect((table["ci_low"] <= table["ci_high"]).all(), "ci_low is above ci_high for some "
               "model: low is the 2.5th percentile, high the 97.5th")
        return table

    def test() -> None:
        small = simulate_battles(truth, 400, seed=3)
        big = simulate_battles(truth, 1600, seed=4)
        n_boot = 50
        out = call(small, n_boot, 0)
        width = out["ci_high"] - out["ci_low"]
        expect(width.max() > 1e-9, "every interval has width 0: all resamples were the same "
               "battles. Draw len(battles) rows WITH replacement, a fresh draw for each refit")
        again = call(small, n_boot, 0)
        expect(np.allclose(again.to_numpy(), out.to_numpy()), "two calls with seed=0 gave "
               "different intervals: make one np.random.default_rng(seed) and draw from it")
        point = fit_bt(small).reindex(out.index)
        if (point > out["ci_high"]).sum() >= 3:
            raise AssertionError("your intervals sit below the fitted strengths: np.percentile "
                                 "takes percents (2.5, 97.5), np.quantile and pandas' quantile "
                                 "take fractions (0.025, 0.975)")
        outside = [m for m in out.index
                   if not out.loc[m, "ci_low"] - 1e-9 <= point[m] <= out.loc[m, "ci_high"] + 1e-9]
        expect(not outside, f"the fit on all battles lies outside your interval for {outside}: "
               "refit each resample with fit_bt and take percentiles of those strengths")
        ref = bootstrap_leaderboard(small, n_boot=200, seed=1).set_index("model")
        ratio = float(width.mean() / (ref["ci_high"] - ref["ci_low"]).mean())
        expect(ratio > 0.65, f"your intervals are {ratio:.2f}x as wide as a 95% percentile "
               "bootstrap's: too narrow. A 68% interval (one standard deviation), or a standard "
               "error divided by sqrt(n_boot), looks like this: use the 2.5th and 97.5th "
               "percentiles of the refitted strengths")
        expect(ratio < 1.5, f"your intervals are {ratio:.2f}x as wide as a 95% percentile "
               "bootstrap's: too wide. Each resample must hold as many battles as there are "
               "(size=len(battles), not n_boot), and use the 2.5th and 97.5th percentiles")
        wide = call(big, n_boot, 0)
        shrink = float(width.mean() / (wide["ci_high"] - wide["ci_low"]).mean())
        expect(shrink > 1.35, f"with 4x more battles the intervals only shrank {shrink:.2f}x "
               "(expected about 2x, as 1/sqrt(n)): resample len(battles) rows, not a fixed number")

    return check("bootstrap_ci", test)


# ----------------------------------------------------------------------------------------------
# Exercise 5: a linear Bradley-Terry reward
# ----------------------------------------------------------------------------------------------
def _linear_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """2000 pairs with 4 integer-valued features, labels sampled from BT on known weights."""
    gen = torch.Generator().manual_seed(seed)
    w_true = torch.tensor([1.0, -0.5, 2.0, 0.0], dtype=torch.float64)
    xa = torch.randint(0, 4, (2000, 4), generator=gen).double()
    xb = torch.randint(0, 4, (2000, 4), generator=gen).double()
    a_wins = torch.rand(2000, generator=gen, dtype=torch.float64) < torch.sigmoid((xa - xb) @ w_true)
    xc = torch.where(a_wins[:, None], xa, xb)
    xr = torch.where(a_wins[:, None], xb, xa)
    return xc, xr


def _pointwise_fit(xc: torch.Tensor, xr: torch.Tensor, intercept: bool) -> np.ndarray:
    """Feature weights of logistic regression with chosen = 1, rejected = 0 (a named mistake)."""
    x = torch.cat([xc, xr])
    y = torch.cat([torch.ones(len(xc)), torch.zeros(len(xr))]).double()
    if intercept:
        x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    w = torch.zeros(x.shape[1], dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x @ w, y)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy()[: xc.shape[1]]


def check_linear_reward(fn: Callable) -> bool:
    """Exercise 5: fit_linear_reward(X_chosen, X_rejected) -> weights [k] of r = X @ w."""

    def test() -> None:
        xc, xr = _linear_data()
        k = xc.shape[1]
        with _one_thread():
            out = fn(xc.clone(), xr.clone())
        expect(out is not None, "fit_linear_reward returned None: did you forget `return`?")
        w = _as_array(out, "fit_linear_reward").reshape(-1)
        if w.shape == (k + 1,):
            raise AssertionError(f"you returned {k + 1} weights for {k} features: drop the "
                                 "intercept, a constant added to every reward cancels in r_c - r_r")
        expect(w.shape == (k,), f"returned {w.shape[0]} weights, expected {k} (one per feature)")
        expect(np.isfinite(w).all(), f"weights {w.tolist()} are not finite: the learning rate is "
               "too large")
        ref = fit_linear_bt(xc, xr, l2=0.0).numpy()
        cos = float(w @ ref / (np.linalg.norm(w) * np.linalg.norm(ref) + 1e-12))
        if cos < -0.9:
            raise AssertionError("the weights have the wrong sign: the chosen response must get "
                                 "the higher reward, loss = pairwise_loss(X_c @ w, X_r @ w)")
        for intercept in (False, True):
            pointwise = _pointwise_fit(xc, xr, intercept)
            if np.abs(w - pointwise).max() < 0.02 and np.abs(pointwise - ref).max() > 0.05:
                raise AssertionError(
                    "these are the weights of a POINTWISE classifier: every chosen response labelled 1 "
                    "and every rejected one 0, each scored alone (the 'classifier' reading of seed "
                    "erratum 18). A reward model compares the two responses of a pair: minimise "
                    "-log sigmoid(X_c @ w - X_r @ w) over the pairs")
        wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        F.softplus(-(xc - xr) @ wt).mean().backward()
        grad = wt.grad.numpy()
        diff = float(np.abs(w - ref).max())
        if np.abs(grad).max() > 1e-3 and diff > 0.02:
            length = float(np.linalg.norm(w) / np.linalg.norm(ref))
            if cos > 0.995 and length < 0.97:
                raise AssertionError(f"the weights point the right way but are shrunk toward 0 "
                                     f"({length:.0%} of the maximum-likelihood length: "
                                     f"{np.round(w, 3).tolist()} vs {np.round(ref, 3).tolist()})."
                                     " Weight decay does this (AdamW's default weight_decay=0.01,"
                                     " or an L2 term: use Adam or weight_decay=0), and so does "
                                     "stopping before the loss has converged")
            raise AssertionError(f"not converged: the mean loss's gradient is still "
                                 f"{np.abs(grad).max():.1e} at your weights (off by up to "
                                 f"{diff:.3f}). More steps, a larger learning rate, or LBFGS")
        expect(diff < 0.02, f"weights {np.round(w, 3).tolist()} differ from the maximum-"
               f"likelihood ones {np.round(ref, 3).tolist()} by up to {diff:.3f}")

    return check("linear_reward", test)


# ----------------------------------------------------------------------------------------------
# Exercise 6: an intransitive cycle
# ----------------------------------------------------------------------------------------------
def check_find_cycle(fn: Callable) -> bool:
    """Exercise 6: find_cycle(win_rate: DataFrame) -> (i, j, k) with i>j>k>i (each > 0.5) or None."""

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
