"""Checkers for chapter 06 (stability, over-fitting and over-optimisation).

Every checker compares against `rmcourse.losses`, `rmcourse.overoptimization` and
`rmcourse.ensembles` on small hand-made and random inputs (brute-force enumeration where that is
cheap, scripted training runs for early stopping), and names the typical mistake it sees.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.checking import as_number, as_tensor, check, expect
from rmcourse.ensembles import combine_rewards, uncertainty_weighted_pair_loss
from rmcourse.losses import kwise_loss, pairwise_loss
from rmcourse.overoptimization import (
    best_of_n_probabilities,
    expected_best_of_n,
    gao_bon_curve,
    kl_best_of_n,
    kl_best_of_n_exact,
)

__all__ = [
    "check_early_stopping",
    "check_pairwise_loss",
    "check_kwise_loss",
    "check_combine_rewards",
    "check_uncertainty_weighted_pair_loss",
    "check_kl_best_of_n_exact",
    "check_expected_best_of_n",
    "check_fit_gao_bon",
    "check_label_smoothed_pair_loss",
]


_number = as_number  # shared with the other chapters' checkers


_tensor = as_tensor


# ----------------------------------------------------------------------------------------------
class _ScriptedModel(nn.Linear):
    """A model whose weights say how many epochs it trained (each epoch adds 1 in place, as an
    optimizer step does), and which records load_state_dict calls."""

    def __init__(self) -> None:
        super().__init__(2, 1)
        with torch.no_grad():
            self.weight.fill_(0.0)
            self.bias.fill_(0.0)
        self.loads = 0

    def load_state_dict(self, state_dict, *args, **kwargs):  # noqa: D102 (spy)
        self.loads += 1
        return super().load_state_dict(state_dict, *args, **kwargs)

    @property
    def epoch(self) -> int:
        return int(round(float(self.bias.detach())))


def _run_early_stopping(fn: Callable, losses: list[float], patience: int) -> tuple[Any, _ScriptedModel, list[int]]:
    model = _ScriptedModel()
    trained: list[int] = []

    def train_one_epoch(m: nn.Module) -> None:
        with torch.no_grad():  # in place, like optimizer.step()
            for param in m.parameters():
                param.add_(1.0)
        trained.append(1)

    def validation_loss(m: nn.Module) -> float:
        e = int(round(float(m.bias.detach())))
        expect(1 <= e <= len(losses), f"validation_loss was called on a model trained for {e} epochs; "
                                      "call it after each epoch's training")
        return losses[e - 1]

    best = fn(model, train_one_epoch, validation_loss, len(losses), patience)
    return best, model, trained


def _expected_early_stopping(losses: list[float], patience: int) -> tuple[int, int]:
    best, best_epoch, since = math.inf, 0, 0
    for e, loss in enumerate(losses, 1):
        if loss < best:
            best, best_epoch, since = loss, e, 0
        else:
            since += 1
            if since >= patience:
                return best_epoch, e
    return best_epoch, len(losses)


def check_early_stopping(fn: Callable) -> bool:
    """Exercise: train_with_early_stopping(model, train_one_epoch, validation_loss, max_epochs,
    patience) -> best epoch (1-based), with the best epoch's weights back in `model`."""

    scenarios = [
        ([0.9, 0.7, 0.8, 0.75, 0.85, 0.6, 0.5, 0.4], 2),   # stops at epoch 4, best 2
        ([0.9, 0.7, 0.7, 0.95, 0.96, 0.97, 0.5], 3),       # a tie is not an improvement
        ([0.9, 0.8, 0.7, 0.6, 0.5], 2),                    # keeps improving: never stops
        ([0.5, 0.6, 0.4, 0.3], 1),                         # patience 1
    ]

    def test() -> None:
        for losses, patience in scenarios:
            want_best, want_trained = _expected_early_stopping(losses, patience)
            best, model, trained = _run_early_stopping(fn, losses, patience)
            where = f"val losses {losses}, patience {patience}"
            expect(best is not None, "train_with_early_stopping returned None: return the best epoch")
            best = int(_number(best, "the returned best epoch"))
            if best == want_best - 1 and want_best > 1:
                raise AssertionError(f"{where}: you returned {best}, the best epoch counted from 0; "
                                     "count epochs from 1 (epoch 1 = after the first pass)")
            if len(losses) > 2 and losses[1] == losses[2] and best == 3:
                raise AssertionError(f"{where}: you chose epoch 3, whose loss only TIES the best; "
                                     "only a strictly lower validation loss is an improvement")
            n = len(trained)
            if n != want_trained:
                if n == len(losses) and want_trained < len(losses):
                    raise AssertionError(f"{where}: you trained all {n} epochs; stop once `patience` "
                                         "epochs in a row brought no improvement")
                if n == want_trained + 1:
                    raise AssertionError(f"{where}: you trained {n} epochs, one too many: stop as soon "
                                         f"as {patience} epochs in a row have brought no improvement")
                if n == want_trained - 1:
                    raise AssertionError(f"{where}: you trained {n} epochs, one too few: `patience` "
                                         "epochs without improvement are allowed before stopping")
                raise AssertionError(f"{where}: you trained {n} epochs, expected {want_trained}")
            expect(best == want_best, f"{where}: the best epoch is {want_best}, you returned {best}")
            if model.epoch != want_best:
                if model.loads and model.epoch == n:
                    raise AssertionError(
                        f"{where}: you called load_state_dict, but the model still holds the last "
                        "epoch's weights: the saved 'best' was a reference. state_dict() returns the "
                        "live tensors, which training keeps changing in place; keep a deep copy")
                raise AssertionError(
                    f"{where}: the model passed in still holds the weights of epoch {model.epoch}, "
                    f"not of the best epoch {want_best}: load the saved best state into it "
                    "(rebinding the name `model` inside your function does not change the caller's model)")

    return check("train_with_early_stopping", test)


# ----------------------------------------------------------------------------------------------
def check_pairwise_loss(fn: Callable) -> bool:
    """Exercise: pairwise_loss(chosen, rejected, margin=None, center_coef=0.0) -> scalar tensor,
    as TRL: mean(-log sigmoid(r_c - r_r - margin)) + center_coef * mean((r_c + r_r)^2)."""

    def test() -> None:
        g = torch.Generator().manual_seed(6)
        c, r = torch.randn(12, generator=g) * 2 + 1.5, torch.randn(12, generator=g) * 2 + 0.5
        m = torch.rand(12, generator=g)

        got = fn(c, r, None, 0.0)
        expect(isinstance(got, torch.Tensor), f"pairwise_loss returned {type(got).__name__}, "
                                              "expected a torch.Tensor")
        value = _number(got, "pairwise_loss(chosen, rejected)")
        want = float(pairwise_loss(c, r))
        if abs(value - float(pairwise_loss(r, c))) < 1e-6:
            raise AssertionError("the loss rewards the rejected answer: it is -log sigmoid(r_c - r_r)")
        if abs(value - float(-F.logsigmoid(c - r).sum())) < 1e-5:
            raise AssertionError("you summed over pairs; TRL (and the chapter) take the mean")
        expect(abs(value - want) < 1e-5, f"without margin or centering expected {want:.5f}, got "
                                         f"{value:.5f}")

        value = _number(fn(c, r, m, 0.0), "pairwise_loss with a margin")
        if abs(value - float(pairwise_loss(c, r, margin=-m))) < 1e-5:
            raise AssertionError("the margin has the wrong sign: the chosen answer must win BY the "
                                 "margin, so the gap is r_c - r_r - margin (the loss goes up)")
        want = float(pairwise_loss(c, r, margin=m))
        expect(abs(value - want) < 1e-5, f"with a margin expected {want:.5f}, got {value:.5f}")

        coef = 0.05
        value = _number(fn(c, r, None, coef), "pairwise_loss with centering")
        base = float(pairwise_loss(c, r))
        wrong = {
            "diff": base + coef * float(((c - r) ** 2).mean()),
            "global": base + coef * float((c + r).mean() ** 2),
            "sum": base + coef * float(((c + r) ** 2).sum()),
            "quarter": base + coef * float((((c + r) / 2) ** 2).mean()),
        }
        if abs(value - wrong["diff"]) < 1e-5:
            raise AssertionError("centering squares r_c + r_r (twice the pair's midpoint), not the "
                                 "difference: the difference is the pairwise term's business")
        if abs(value - wrong["global"]) < 1e-5:
            raise AssertionError("you squared the MEAN of r_c + r_r: that only pins the global mean. "
                                 "The term is the mean of the squares, one per pair")
        if abs(value - wrong["sum"]) < 1e-4:
            raise AssertionError("you summed the centering term over pairs; TRL takes the mean")
        if abs(value - wrong["quarter"]) < 1e-5:
            raise AssertionError("you squared the midpoint (r_c + r_r) / 2; TRL's term squares "
                                 "r_c + r_r itself (4 times the midpoint squared)")
        want = float(pairwise_loss(c, r, center_coef=coef))
        expect(abs(value - want) < 1e-5, f"with center_coef={coef} expected {want:.5f}, got {value:.5f}")
        value = _number(fn(c, r, m, coef), "pairwise_loss with margin and centering")
        want = float(pairwise_loss(c, r, margin=m, center_coef=coef))
        expect(abs(value - want) < 1e-5, f"with both terms expected {want:.5f}, got {value:.5f}")

        far_c, far_r = torch.tensor([-150.0, 2.0]), torch.tensor([150.0, 0.0])
        far = fn(far_c, far_r, None, 0.0)
        expect(isinstance(far, torch.Tensor) and bool(torch.isfinite(far)),
               "a confidently wrong pair (r_c - r_r = -300) gave a non-finite loss: "
               "log(sigmoid(x)) underflows to log(0); use F.logsigmoid")
        want = float(pairwise_loss(far_c, far_r))
        expect(abs(float(far) - want) < 1e-3, f"for gaps of -300 and 2 expected {want:.3f}, got {float(far):.3f}")

        cg, rg = c.clone().requires_grad_(True), r.clone().requires_grad_(True)
        out = fn(cg, rg, m, coef)
        expect(isinstance(out, torch.Tensor) and out.requires_grad,
               "the loss must stay connected to the rewards (no .item(), no numpy)")

    return check("pairwise_loss", test)


# ----------------------------------------------------------------------------------------------
def check_kwise_loss(fn: Callable) -> bool:
    """Exercise: kwise_loss(rewards: list of [K_g] tensors, scores: list of [K_g] tensors)."""

    def pooled(rewards, scores):  # every pair of every prompt, one mean: prompts with big K dominate
        losses = []
        for r, s in zip(rewards, scores):
            for i, j in itertools.combinations(range(len(s)), 2):
                if s[i] != s[j]:
                    w, l = (i, j) if s[i] > s[j] else (j, i)
                    losses.append(-F.logsigmoid(r[w] - r[l]))
        return float(torch.stack(losses).mean())

    def per_prompt_sum(rewards, scores):
        out = []
        for r, s in zip(rewards, scores):
            terms = [-F.logsigmoid(r[i] - r[j]) if s[i] > s[j] else -F.logsigmoid(r[j] - r[i])
                     for i, j in itertools.combinations(range(len(s)), 2) if s[i] != s[j]]
            out.append(torch.stack(terms).sum())
        return float(torch.stack(out).mean())

    def adjacent(rewards, scores):
        out = []
        for r, s in zip(rewards, scores):
            order = torch.argsort(s, descending=True)
            out.append(-F.logsigmoid(r[order[:-1]] - r[order[1:]]).mean())
        return float(torch.stack(out).mean())

    def test() -> None:
        r1 = torch.tensor([0.5, 1.5, -0.3])
        s1 = torch.tensor([2.0, 3.0, 1.0])  # response 1 best, then 0, then 2
        got = _number(fn([r1], [s1]), "kwise_loss on one prompt")
        want = float(kwise_loss([r1], [s1]))
        if abs(got - float(kwise_loss([r1], [-s1]))) < 1e-6:
            raise AssertionError("you preferred the LOWER score: higher score = preferred answer")
        if abs(got - adjacent([r1], [s1])) < 1e-6:
            raise AssertionError("you used only neighbouring answers in the ranking (K - 1 pairs); "
                                 "InstructGPT uses all C(K, 2) pairs")
        if abs(got - per_prompt_sum([r1], [s1])) < 1e-6:
            raise AssertionError("you summed the prompt's pairs: divide by C(K, 2), the number of "
                                 "pairs of that prompt")
        expect(abs(got - want) < 1e-5, f"one prompt, K = 3: expected the mean over its 3 pairs {want:.5f}, "
                                       f"got {got:.5f}")

        g = torch.Generator().manual_seed(2)
        rewards = [torch.randn(2, generator=g), torch.randn(6, generator=g), torch.randn(4, generator=g)]
        scores = [torch.tensor([1.0, 0.0]), torch.randn(6, generator=g), torch.randn(4, generator=g)]
        got = _number(fn(rewards, scores), "kwise_loss on three prompts")
        want = float(kwise_loss(rewards, scores))
        if abs(got - pooled(rewards, scores)) < 1e-6:
            raise AssertionError("you averaged over all pairs of the batch, so the prompt with K = 6 "
                                 "(15 pairs) outweighs the one with K = 2 (1 pair). Weight each pair "
                                 "1 / C(K, 2): average within each prompt, then over prompts")
        if abs(got - per_prompt_sum(rewards, scores)) < 1e-6:
            raise AssertionError("you summed each prompt's pairs: divide by C(K, 2), the number of "
                                 "pairs of that prompt")
        if abs(got - adjacent(rewards, scores)) < 1e-6:
            raise AssertionError("you used only neighbouring answers in each ranking; use all C(K, 2) pairs")
        expect(abs(got - want) < 1e-5, f"three prompts with K = 2, 6, 4: expected {want:.5f}, got {got:.5f}")

        tied_r = [torch.tensor([0.2, 1.0, -0.5, 0.4])]
        tied_s = [torch.tensor([1.0, 1.0, 0.0, 2.0])]  # two answers tie: that pair says nothing
        got = _number(fn(tied_r, tied_s), "kwise_loss with a tie")
        want = float(kwise_loss(tied_r, tied_s))
        expect(abs(got - want) < 1e-5, f"scores {tied_s[0].tolist()} have a tie: a tied pair makes no "
                                       f"comparison (5 pairs, not 6); expected {want:.5f}, got {got:.5f}")

        rg = [x.clone().requires_grad_(True) for x in rewards]
        out = fn(rg, scores)
        expect(isinstance(out, torch.Tensor) and out.requires_grad,
               "the loss must stay connected to the rewards (no .item(), no numpy)")
        out.backward()
        rw = [x.clone().requires_grad_(True) for x in rewards]
        kwise_loss(rw, scores).backward()
        for a, b in zip(rg, rw):
            expect(a.grad is not None and torch.allclose(a.grad, b.grad, atol=1e-6),
                   "the value is right but the gradient is not: build the loss from the reward "
                   "tensors themselves (torch operations only)")

    return check("kwise_loss", test)


# ----------------------------------------------------------------------------------------------
def check_kl_best_of_n_exact(fn: Callable) -> bool:
    """Exercise: kl_best_of_n_exact(probs, n) for a finite base policy, `probs` listed in order of
    increasing reward; never above the analytic log n - (n - 1) / n."""

    def test() -> None:
        cases = [np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.1, 0.1, 0.3]), np.full(5, 0.2),
                 np.array([0.25, 0.0, 0.45, 0.3])]
        for probs in cases:
            for n in (2, 4, 9):
                got = fn(probs.copy(), n)
                what = f"kl_best_of_n_exact({probs.tolist()}, {n})"
                expect(got is not None, f"{what} returned None: did you forget `return`?")
                value = float(got)
                want = kl_best_of_n_exact(probs, n)
                if not math.isfinite(value) and np.any(probs == 0):
                    raise AssertionError(f"{what} is {value}: a response with probability 0 is never "
                                         "chosen either, and contributes 0 (0 log 0 = 0); skip it")
                value = _number(value, what)
                if abs(value - kl_best_of_n(n)) < 1e-9 and abs(want - kl_best_of_n(n)) > 1e-6:
                    raise AssertionError(f"{what} returned log n - (n - 1)/n = {value:.4f}: that is the "
                                         "analytic upper bound; compute the best-of-n probabilities "
                                         "and the KL from them")
                q = best_of_n_probabilities(probs, n)
                keep = q > 0
                reverse_kl = float(np.sum(probs[keep] * np.log(probs[keep] / q[keep])))
                if abs(value - reverse_kl) < 1e-9 and abs(reverse_kl - want) > 1e-6:
                    raise AssertionError(f"{what}: you computed KL(base || best-of-n); the KL of the "
                                         "best-of-n policy FROM the base is sum q log(q / p), q the "
                                         "best-of-n probabilities")
                if probs[0] > 0 and abs(value - kl_best_of_n_exact(probs[::-1], n)) < 1e-9 \
                        and abs(want - kl_best_of_n_exact(probs[::-1], n)) > 1e-6:
                    raise AssertionError(f"{what}: you computed worst-of-n (or read the list from the "
                                         "wrong end): probs are in order of INCREASING reward, the "
                                         "last response is the best")
                if abs(value - want / math.log(2)) < 1e-9 and want > 1e-6:
                    raise AssertionError(f"{what}: that is the KL in bits; use the natural log (nats)")
                no_diff = np.cumsum(probs) ** n  # P(best of n <= response i), not P(= i)
                if np.all(probs > 0) and abs(value - float(np.sum(no_diff * np.log(no_diff / probs)))) < 1e-9:
                    raise AssertionError(f"{what}: F_i^n is the probability that the best of n is AT MOST "
                                         "response i; the probability that it IS response i is "
                                         "F_i^n - F_(i-1)^n")
                expect(abs(value - want) < 1e-8, f"{what}: expected {want:.6f}, got {value:.6f}")
                expect(value <= kl_best_of_n(n) + 1e-9, f"{what} = {value:.4f} exceeds the bound "
                                                        f"log n - (n-1)/n = {kl_best_of_n(n):.4f}")
        got = _number(fn(np.array([0.2, 0.3, 0.5]), 1), "kl_best_of_n_exact(probs, 1)")
        expect(abs(got) < 1e-9, f"best-of-1 is the base policy itself: KL must be 0, got {got:.4g}")

    return check("kl_best_of_n_exact", test)


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
                                 ".detach() on the weights. Left in the graph, the gradient also "
                                 "flows through w = 1 / (1 + var) and, since the loss term is "
                                 "positive, descent RAISES the variance: the members learn to "
                                 "disagree, which shrinks every weight and the loss")

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


# ----------------------------------------------------------------------------------------------
def _label_smoothed(c: torch.Tensor, r: torch.Tensor, eps: float) -> torch.Tensor:
    """The chapter's loss (rmcourse.heads): (1 - eps) BT(c, r) + eps BT(r, c), mean over pairs."""
    return ((1 - eps) * pairwise_loss(c, r, reduction="none")
            + eps * pairwise_loss(r, c, reduction="none")).mean()


def check_label_smoothed_pair_loss(fn: Callable) -> bool:
    """Exercise: label_smoothed_pair_loss(chosen_rewards, rejected_rewards, epsilon) -> scalar
    tensor, mean over pairs of -(1 - eps) log sigmoid(d) - eps log sigmoid(-d), d = r_c - r_r."""

    def test() -> None:
        g = torch.Generator().manual_seed(9)
        c, r = torch.randn(12, generator=g) * 2 + 1.0, torch.randn(12, generator=g) * 2
        d = c - r
        eps = 0.1

        got = fn(c, r, eps)
        expect(got is not None, "label_smoothed_pair_loss returned None: did you forget `return`?")
        expect(isinstance(got, torch.Tensor), f"label_smoothed_pair_loss returned "
                                              f"{type(got).__name__}, expected a torch.Tensor")
        if got.numel() == len(c):
            raise AssertionError(f"you returned one loss per pair (shape {tuple(got.shape)}): the "
                                 "loss is their MEAN over pairs, one scalar to call backward() on")
        value = _number(got, "label_smoothed_pair_loss(chosen, rejected, 0.1)")
        want = float(_label_smoothed(c, r, eps))
        plain, flipped = -F.logsigmoid(d), -F.logsigmoid(-d)
        wrong = {
            "swapped": float((eps * plain + (1 - eps) * flipped).mean()),
            "sum": float((1 - eps) * plain.sum() + eps * flipped.sum()),
            "plain": float(plain.mean()),
            "half": float(((1 - eps / 2) * plain + eps / 2 * flipped).mean()),
            "minus": float(((1 - eps) * plain - eps * flipped).mean()),
            "rdpo": float(((1 - eps) * plain - eps * flipped).mean() / (1 - 2 * eps)),
            "kl": want + (1 - eps) * math.log(1 - eps) + eps * math.log(eps),
        }
        if abs(value - wrong["swapped"]) < 1e-5:
            raise AssertionError("epsilon is on the wrong side: the observed label keeps weight "
                                 "1 - eps (-(1 - eps) log sigmoid(d)) and only eps goes to the "
                                 "flipped label (-eps log sigmoid(-d)). Yours trains towards the "
                                 "rejected answer")
        if abs(value - wrong["sum"]) < 1e-4:
            raise AssertionError("you summed over pairs; take the mean, as the chapter's loss and "
                                 "TRL do, so the learning rate does not depend on the batch size")
        if abs(value - wrong["plain"]) < 1e-5:
            raise AssertionError("epsilon is ignored: this is the plain Bradley-Terry loss. Add "
                                 "the term for the flipped label, -eps log sigmoid(-d), and give "
                                 "the observed one the weight 1 - eps")
        if abs(value - wrong["half"]) < 1e-5:
            raise AssertionError("you smoothed towards the uniform target (1 - eps/2 on the chosen "
                                 "side, as classification label smoothing does with 2 classes). "
                                 "Here eps is the probability that the label is flipped: the "
                                 "chosen side gets 1 - eps, the rejected side eps")
        if abs(value - wrong["rdpo"]) < 1e-5:
            raise AssertionError("that is Robust DPO's de-biased loss (flipped term subtracted, "
                                 "divided by 1 - 2 eps), a different method. Label smoothing ADDS "
                                 "eps times the loss of the flipped label")
        if abs(value - wrong["minus"]) < 1e-5:
            raise AssertionError("the flipped term has the wrong sign: it is a loss, "
                                 "-eps log sigmoid(-d) >= 0, added to the observed one")
        if abs(value - wrong["kl"]) < 1e-5:
            raise AssertionError("you subtracted the entropy of the smoothed target (a KL "
                                 "divergence): same gradient, but the loss is the cross-entropy "
                                 "-(1 - eps) log sigmoid(d) - eps log sigmoid(-d), and at eps = 0 "
                                 "the term 0 * log 0 is nan")
        expect(abs(value - want) < 1e-5, f"with epsilon = {eps} expected {want:.5f}, got {value:.5f}")

        zero = _number(fn(c, r, 0.0), "label_smoothed_pair_loss(chosen, rejected, 0.0)")
        want0 = float(pairwise_loss(c, r))
        expect(abs(zero - want0) < 1e-5,
               f"with epsilon = 0 the loss must reduce to the plain Bradley-Terry loss "
               f"-mean(log sigmoid(d)) = {want0:.5f}, got {zero:.5f}")
        for e in (0.05, 0.25, 0.4):
            value = _number(fn(c, r, e), f"label_smoothed_pair_loss with epsilon = {e}")
            want = float(_label_smoothed(c, r, e))
            expect(abs(value - want) < 1e-5, f"with epsilon = {e} expected {want:.5f}, got {value:.5f}")

        # |d| = 200: sigmoid(-200) underflows to 0 in float32, so log(sigmoid(.)) gives -inf and
        # eps * inf (or 0 * inf at eps = 0) turns the loss into inf or nan
        far_c, far_r = torch.tensor([100.0, -100.0, 3.0]), torch.tensor([-100.0, 100.0, 0.0])
        for e in (0.0, 0.1):
            far = fn(far_c, far_r, e)
            expect(isinstance(far, torch.Tensor) and far.numel() == 1 and bool(torch.isfinite(far)),
                   f"for gaps of +200 and -200 (epsilon = {e}) the loss is {far}, not finite: "
                   "log(sigmoid(x)) underflows to log(0) = -inf; use F.logsigmoid(d) and "
                   "F.logsigmoid(-d)")
            want = float(_label_smoothed(far_c, far_r, e))
            expect(abs(float(far) - want) < 1e-3, f"for gaps of +200, -200 and 3 (epsilon = {e}) "
                                                  f"expected {want:.3f}, got {float(far):.3f}")

        cg, rg = c.clone().requires_grad_(True), r.clone().requires_grad_(True)
        out = fn(cg, rg, eps)
        expect(isinstance(out, torch.Tensor) and out.requires_grad,
               "the loss must stay connected to the rewards (no .item(), no numpy, no .detach())")
        out.backward()
        # d loss / d r_c = (sigmoid(d) - (1 - eps)) / n: zero where sigmoid(d) = 1 - eps
        want_grad = (torch.sigmoid(d) - (1 - eps)) / len(d)
        expect(cg.grad is not None and torch.allclose(cg.grad, want_grad, atol=1e-6),
               "the gradient with respect to the chosen rewards is not (sigmoid(d) - (1 - eps)) / n")
        expect(rg.grad is not None and torch.allclose(rg.grad, -want_grad, atol=1e-6),
               "the gradient with respect to the rejected rewards is not -(sigmoid(d) - (1 - eps)) / n")

    return check("label_smoothed_pair_loss", test)
