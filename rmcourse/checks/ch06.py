"""Checkers for chapter 06 (stability, over-fitting and over-optimisation).

Every checker compares against `rmcourse.overoptimization` and `rmcourse.ensembles` on small
hand-made and random inputs (and brute-force enumeration where that is cheap), and names the
typical mistake it sees.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from rmcourse.checking import as_number, check, expect
from rmcourse.ensembles import combine_rewards, uncertainty_weighted_pair_loss
from rmcourse.overoptimization import expected_best_of_n, gao_bon_curve, kl_best_of_n

__all__ = [
    "check_kl_best_of_n",
    "check_expected_best_of_n",
    "check_combine_rewards",
    "check_uncertainty_weighted_pair_loss",
    "check_fit_gao_bon",
]


_number = as_number  # shared with the other chapters' checkers


def _tensor(value: Any, what: str, shape: tuple) -> torch.Tensor:
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    expect(isinstance(value, torch.Tensor), f"{what} returned {type(value).__name__}, expected a "
                                            "torch.Tensor")
    expect(tuple(value.shape) == shape, f"{what} returned shape {tuple(value.shape)}, expected "
                                        f"{shape}")
    return value


# ----------------------------------------------------------------------------------------------
def check_kl_best_of_n(fn: Callable) -> bool:
    """Exercise: kl_best_of_n(n) = log n - (n - 1) / n."""

    def test() -> None:
        got = _number(fn(1), "kl_best_of_n(1)")
        expect(abs(got) < 1e-12, f"best-of-1 is the base policy itself: KL must be 0, got {got:.4g}")
        for n in (2, 4, 16, 256):
            got = _number(fn(n), f"kl_best_of_n({n})")
            want = kl_best_of_n(n)
            if abs(got - math.log(n)) < 1e-9:
                raise AssertionError(f"kl_best_of_n({n}) returned log n = {got:.4f}; the exact KL "
                                     "subtracts (n - 1) / n")
            if abs(got - (math.log(n) - (n - 1))) < 1e-9:
                raise AssertionError(f"kl_best_of_n({n}) subtracted n - 1; the formula subtracts "
                                     "(n - 1) / n")
            expect(abs(got - want) < 1e-9, f"kl_best_of_n({n}) expected {want:.6f}, got {got:.6f}")

    return check("kl_best_of_n", test)


# ----------------------------------------------------------------------------------------------
def _brute_force(proxy, gold, n):
    subsets = list(itertools.combinations(range(len(proxy)), n))
    return float(np.mean([gold[max(sub, key=lambda i: proxy[i])] for sub in subsets]))


def check_expected_best_of_n(fn: Callable) -> bool:
    """Exercise: expected_best_of_n(proxy, gold, n) for ONE prompt's pool (1-D arrays, no ties)."""

    def test() -> None:
        proxy = np.array([0.3, -1.2, 2.0, 0.9, 1.5, -0.4])
        gold = np.array([1.0, 0.0, -2.0, 3.0, 0.5, 4.0])
        got = _number(fn(proxy, gold, 1), "expected_best_of_n(proxy, gold, 1)")
        expect(abs(got - gold.mean()) < 1e-9, f"with n = 1 every sample is equally likely: expected "
                                              f"the mean gold {gold.mean():.4f}, got {got:.4f}")
        got = _number(fn(proxy, gold, 6), "expected_best_of_n(proxy, gold, 6)")
        if abs(got - gold[np.argmin(proxy)]) < 1e-9:
            raise AssertionError("with n = K you returned the gold of the LOWEST proxy score: "
                                 "sort the pool in ascending proxy order so the weights grow "
                                 "toward the top")
        expect(abs(got - gold[np.argmax(proxy)]) < 1e-9,
               f"with n = K the best-of-n is always the top proxy sample (gold "
               f"{gold[np.argmax(proxy)]:.4f}), got {got:.4f}; the weights C(i-1, n-1) / C(K, n) "
               "put all the mass on i = K when n = K")
        for n in (2, 3, 4):
            want = _brute_force(proxy, gold, n)
            got = _number(fn(proxy, gold, n), f"expected_best_of_n(proxy, gold, {n})")
            expect(abs(got - want) < 1e-9,
                   f"for n = {n} enumerating all {math.comb(6, n)} subsets gives {want:.4f}, got "
                   f"{got:.4f}; the i-th lowest of K wins with probability "
                   "C(i-1, n-1) / C(K, n) (i counted from 1)")
        rng = np.random.default_rng(4)
        p, g = rng.normal(size=40), rng.normal(size=40)
        for n in (5, 17):
            want = float(expected_best_of_n(p[None], g[None], n)[0])
            got = _number(fn(p, g, n), f"expected_best_of_n on a pool of 40, n = {n}")
            expect(abs(got - want) < 1e-7, f"on a pool of 40 with n = {n} expected {want:.5f}, got "
                                           f"{got:.5f}")

    return check("expected_best_of_n", test)


# ----------------------------------------------------------------------------------------------
def check_combine_rewards(fn: Callable) -> bool:
    """Exercise: combine_rewards(member_rewards[M, N], method, lam) -> Tensor[N]."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        members = torch.randn(4, 7, generator=g)
        for method in ("mean", "worst", "uncertainty"):
            got = _tensor(fn(members, method, 0.5), f"combine_rewards(members, {method!r})", (7,))
            want = combine_rewards(members, method, lam=0.5)
            if method == "worst":
                if torch.allclose(got, members.max(dim=0).values):
                    raise AssertionError("'worst' returned the maximum; the pessimistic ensemble "
                                         "takes the minimum over members")
            if method == "uncertainty":
                std_form = members.mean(0) - 0.5 * members.std(0, unbiased=False)
                if torch.allclose(got, std_form, atol=1e-6):
                    raise AssertionError("'uncertainty' subtracted the standard deviation; Coste et "
                                         "al. subtract lam * variance")
                unbiased = members.mean(0) - 0.5 * members.var(0)
                if torch.allclose(got, unbiased, atol=1e-6):
                    raise AssertionError("use the population variance across members "
                                         "(unbiased=False), as rmcourse does")
            expect(torch.allclose(got, want, atol=1e-6),
                   f"method {method!r}: expected {want.numpy().round(3)}, got "
                   f"{got.detach().numpy().round(3)} (reduce over dim 0, the members)")

    return check("combine_rewards", test)


# ----------------------------------------------------------------------------------------------
def check_uncertainty_weighted_pair_loss(fn: Callable) -> bool:
    """Exercise: uncertainty_weighted_pair_loss(member_chosen[M, B], member_rejected[M, B])."""

    def test() -> None:
        chosen = torch.tensor([[1.0, 3.0, 0.5], [1.0, -2.0, 0.7], [1.2, 0.0, 0.6]])
        rejected = torch.tensor([[0.0, 0.0, 0.9], [0.1, 0.5, 0.8], [0.0, -0.5, 1.0]])
        want = uncertainty_weighted_pair_loss(chosen, rejected)
        c = chosen.clone().requires_grad_(True)
        r = rejected.clone().requires_grad_(True)
        got = fn(c, r)
        got_value = _number(got, "uncertainty_weighted_pair_loss")
        plain = -F.logsigmoid(chosen.mean(0) - rejected.mean(0)).mean()
        rescaled = [float((1.0 / (1.0 + chosen.var(0, unbiased=u) + rejected.var(0, unbiased=u))).mean()
                          * plain) for u in (True, False)]
        if min(abs(got_value - x) for x in rescaled) < 1e-6:
            raise AssertionError("your loss equals mean(weights) * (mean loss): the reduction "
                                 "happened before the weighting. Keep one loss per pair "
                                 "(reduction='none'), then weight and average")
        expect(abs(got_value - float(want)) < 1e-5,
               f"expected {float(want):.5f}, got {got_value:.5f} (weights 1 / (1 + var_chosen + "
               "var_rejected), population variance over members, loss -logsigmoid on the "
               "ensemble-mean margin)")
        expect(isinstance(got, torch.Tensor) and got.requires_grad,
               "the loss must be a tensor connected to the rewards (no .item(), no numpy)")
        got.backward()
        c2 = chosen.clone().requires_grad_(True)
        r2 = rejected.clone().requires_grad_(True)
        uncertainty_weighted_pair_loss(c2, r2).backward()
        if not torch.allclose(c.grad, c2.grad, atol=1e-6):
            raise AssertionError("the gradient differs from the detached-weights loss: call "
                                 ".detach() on the weights so the members cannot lower the loss by "
                                 "agreeing with each other")

    return check("uncertainty_weighted_pair_loss", test)


# ----------------------------------------------------------------------------------------------
def check_fit_gao_bon(fn: Callable) -> bool:
    """Exercise: fit_gao_bon(d, gold) -> (alpha, beta) of gold - gold(d=0) = d (alpha - beta d)."""

    def test() -> None:
        ns = np.array([1, 2, 4, 8, 16, 32, 64, 128])
        d = np.sqrt(kl_best_of_n(ns))
        for alpha, beta, gold0 in ((1.7, 0.6, 0.25), (0.8, 0.1, -1.0)):
            gold = gao_bon_curve(d, alpha, beta, gold0)
            out = fn(d, gold)
            expect(isinstance(out, (tuple, list)) and len(out) == 2,
                   f"fit_gao_bon must return (alpha, beta), got {out!r}")
            a, b = _number(out[0], "alpha"), _number(out[1], "beta")
            if abs(b + beta) < 1e-3 and abs(a - alpha) < 1e-3:
                raise AssertionError("beta came out with the wrong sign: the model is "
                                     "d * (alpha - beta * d), so the d^2 column is -d^2")
            if abs(a - alpha) > 1e-3 and gold0 != 0:
                raise AssertionError(f"alpha = {a:.4f}, expected {alpha}: subtract the gold reward "
                                     "at d = 0 (n = 1) before fitting, the curve has no intercept")
            expect(abs(a - alpha) < 1e-3 and abs(b - beta) < 1e-3,
                   f"on exact data with alpha={alpha}, beta={beta} you returned ({a:.4f}, {b:.4f})")

    return check("fit_gao_bon", test)
