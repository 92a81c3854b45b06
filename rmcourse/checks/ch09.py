"""Checkers for chapter 09 (a policy optimised against a reward model).

Every checker compares the learner's function with `rmcourse.rl` (`kl_penalised_rewards`,
`rloo_advantages`, `ppo_clip_loss`, `kl_estimators`) on small hand-made and random inputs, in
float32 and float64, and names the typical mistake it sees. Padding positions of the token
tensors hold arbitrary numbers, as a batched forward pass leaves them, so a missing mask shows.
The early-warning signal of exercise 5 has no counterpart in `rmcourse.rl`; its reference is
`hacking_signal` below.

Tolerances: the references are computed in float64 from the very inputs the learner gets, and a
learner's float32 result is off by about 1e-6 relative, while every named mistake lands far
outside 1e-5 on these inputs (tests/test_checks_ch09.py runs each one). So a result within 1e-5
(relative and absolute) passes, and a mistake is named only when the result matches that
mistake's formula within about the same tolerance.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from rmcourse.checking import as_number, as_tensor, check, expect
from rmcourse.checks.common import needs_exercise  # re-exported: solutions/09 imports it from here
from rmcourse.rl import kl_estimators, kl_penalised_rewards, ppo_clip_loss, rloo_advantages

__all__ = [
    "check_kl_penalised_rewards",
    "check_rloo_advantages",
    "check_ppo_clip_loss",
    "check_kl_estimators",
    "check_hacking_signal",
    "needs_exercise",
]

ATOL = RTOL = 1e-5


def _close(got: torch.Tensor, want: torch.Tensor) -> bool:
    got = got.detach().to(torch.float64)
    want = want.detach().to(torch.float64)
    return got.shape == want.shape and bool(torch.allclose(got, want, rtol=RTOL, atol=ATOL))


def _near(got: float, want: float) -> bool:
    return abs(got - want) <= ATOL + RTOL * abs(want)


def _show(t: torch.Tensor) -> str:
    return str(np.round(t.detach().to(torch.float64).numpy(), 3).tolist())


def _tokens(n: int, t: int, lengths: list[int], seed: int, dtype=torch.float32, spread: float = 1.0):
    """(logprobs, ref_logprobs, mask) with valid tokens a prefix of each row and arbitrary,
    nonzero numbers on the padding (what a batched forward leaves there)."""
    g = torch.Generator().manual_seed(seed)
    lp = -torch.rand(n, t, generator=g, dtype=torch.float64) * 3.0 - 0.05
    ref = (lp + (torch.rand(n, t, generator=g, dtype=torch.float64) - 0.5) * 2.0 * spread).clamp(max=-0.01)
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    junk = -torch.rand(n, t, generator=g, dtype=torch.float64) * 4.0 - 0.5
    junk_ref = -torch.rand(n, t, generator=g, dtype=torch.float64) * 4.0 - 0.5
    lp = torch.where(mask, lp, junk).to(dtype)
    ref = torch.where(mask, ref, junk_ref).to(dtype)
    return lp, ref, mask


def _unchanged(before: list[torch.Tensor], after: list[torch.Tensor], what: str) -> None:
    for b, a in zip(before, after):
        expect(torch.equal(b, a), f"{what} changed one of its input tensors in place: build the "
                                  "result in a new tensor (e.g. start from torch.zeros_like or "
                                  "torch.where), the caller still needs its inputs")


# ----------------------------------------------------------------------------------------------
def _last_index(mask: torch.Tensor) -> torch.Tensor:
    return mask.long().sum(1) - 1


def _place(scores: torch.Tensor, index: torch.Tensor, shape) -> torch.Tensor:
    out = torch.zeros(shape, dtype=torch.float64)
    out[torch.arange(shape[0]), index] = scores.to(torch.float64)
    return out


def check_kl_penalised_rewards(fn: Callable) -> bool:
    """Exercise: kl_penalised_rewards(scores[N], logprobs[N, T], ref_logprobs[N, T], mask[N, T],
    beta) -> [N, T]: -beta (log pi - log pi_ref) on every valid token, plus the score on each
    answer's last valid token, 0 on padding."""

    def call(scores, lp, ref, mask, beta, what):
        before = [scores.clone(), lp.clone(), ref.clone(), mask.clone()]
        out = fn(scores, lp, ref, mask, beta)
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (lp.shape[0],):
            raise AssertionError(f"{what} returned one number per answer (shape {tuple(out.shape)}): "
                                 "return the per-token rewards [N, T]; the trainer sums them itself "
                                 "(the sum is score - beta * k1)")
        out = as_tensor(out, what, tuple(lp.shape))
        _unchanged(before, [scores, lp, ref, mask], what)
        return out

    def test() -> None:
        n, t = 5, 6
        lengths = [6, 3, 1, 4, 2]
        beta = 0.1
        for dtype in (torch.float32, torch.float64):
            lp, ref, mask = _tokens(n, t, lengths, seed=9, dtype=dtype)
            lp64, ref64 = lp.double(), ref.double()
            kl64 = lp64 - ref64
            last = _last_index(mask)
            zero = torch.zeros(n, dtype=dtype)
            where = f"({dtype}, answers of {lengths} valid tokens, beta = {beta})"

            # 1. scores 0: only the KL term is left
            got = call(zero, lp, ref, mask, beta, "kl_penalised_rewards with all scores 0")
            want = torch.where(mask, -beta * kl64, 0.0)
            if not _close(got, want):
                if _close(got, torch.where(mask, beta * kl64, 0.0)):
                    raise AssertionError(f"{where} the KL term has the wrong sign. Each token PAYS "
                                         "-beta * (log pi - log pi_ref): your +beta * (log pi - log "
                                         "pi_ref), which is -beta * (log pi_ref - log pi) with the "
                                         "policy and the reference swapped, would reward drifting "
                                         "away from the reference")
                if _close(got, -beta * kl64) or _close(got, beta * kl64):
                    raise AssertionError(f"{where} with all scores 0 your rewards are not 0 on the "
                                         "padding: the KL term belongs on valid tokens only (mask it); "
                                         "padding positions hold whatever a batched forward left there")
                if _close(got, torch.where(mask, -kl64, 0.0)):
                    raise AssertionError(f"{where} beta is missing: each token pays "
                                         "-beta * (log pi - log pi_ref)")
                if _close(got, torch.zeros_like(want)):
                    raise AssertionError(f"{where} with all scores 0 you returned zeros: the KL "
                                         "penalty -beta * (log pi - log pi_ref) is missing")
                raise AssertionError(f"{where} with all scores 0 the rewards are "
                                     f"-beta * (logprobs - ref_logprobs) on valid tokens, 0 on "
                                     f"padding: expected {_show(want)}, got {_show(got)}")

            # 2. policy equal to the reference: only the score is left, on the last valid token
            scores = torch.tensor([1.5, -2.0, 0.7, 3.0, -0.4], dtype=dtype)
            same = lp.clone()
            got = call(scores, lp, same, mask, beta, "kl_penalised_rewards with pi = pi_ref")
            want = _place(scores, last, (n, t))
            if not _close(got, want):
                s64 = scores.double()[:, None]
                if _close(got, torch.where(mask, s64, 0.0)) or _close(got, s64.expand(n, t)):
                    raise AssertionError(f"{where} the score is on every token: the reward model "
                                         "scores the whole answer once, so it goes on the LAST valid "
                                         "token only (summed over the answer it then counts once, "
                                         "not once per token)")
                if _close(got, _place(scores, torch.full((n,), t - 1), (n, t))):
                    raise AssertionError(f"{where} the score is on position -1, the last column: for "
                                         "every answer shorter than the batch that is padding. Put it "
                                         "on each answer's last VALID token (the number of valid "
                                         "tokens minus 1)")
                if _close(got, _place(scores, torch.zeros(n, dtype=torch.long), (n, t))):
                    raise AssertionError(f"{where} the score is on the FIRST token; it belongs on "
                                         "the last valid token, after the whole answer was written")
                if _close(got, -want):
                    raise AssertionError(f"{where} the score was subtracted; it is added")
                if _close(got, torch.zeros_like(want)):
                    raise AssertionError(f"{where} the reward model's score is missing: add it on "
                                         "each answer's last valid token")
                raise AssertionError(f"{where} with pi = pi_ref the rewards are the score on the last "
                                     f"valid token and 0 elsewhere: expected {_show(want)}, got "
                                     f"{_show(got)}")

            # 3. everything together, and beta = 0
            for b in (beta, 0.0, 0.05):
                got = call(scores, lp, ref, mask, b, f"kl_penalised_rewards with beta = {b}")
                want = kl_penalised_rewards(scores.double(), lp64, ref64, mask, b)
                expect(_close(got, want), f"({dtype}, answers of {lengths} valid tokens, beta = {b}) "
                                          f"expected {_show(want)}, got {_show(got)}")

        # random batches: lengths from 1 to T, one answer filling the batch
        g = torch.Generator().manual_seed(3)
        for seed in range(3):
            n, t = 12, 9
            lengths = torch.randint(1, t + 1, (n,), generator=g).tolist()
            lengths[0] = t
            lp, ref, mask = _tokens(n, t, lengths, seed=100 + seed)
            scores = torch.randn(n, generator=g) * 2
            got = call(scores, lp, ref, mask, 0.2, "kl_penalised_rewards on a random batch")
            want = kl_penalised_rewards(scores.double(), lp.double(), ref.double(), mask, 0.2)
            expect(_close(got, want), f"on a random batch of {n} answers (lengths {lengths}) "
                                      f"expected {_show(want)}, got {_show(got)}")
            sums = got.detach().double().sum(1)
            k1 = torch.where(mask, lp.double() - ref.double(), 0.0).sum(1)
            expect(torch.allclose(sums, scores.double() - 0.2 * k1, atol=1e-4),
                   "summed over each answer the rewards must be score - beta * k1")

    return check("kl_penalised_rewards", test)


# ----------------------------------------------------------------------------------------------
def check_rloo_advantages(fn: Callable) -> bool:
    """Exercise: rloo_advantages(returns[P, k]) -> [P, k]: each return minus the mean return of
    the OTHER k - 1 answers to the same prompt."""

    def call(r, what):
        before = r.clone()
        out = as_tensor(fn(r), what, tuple(r.shape))
        _unchanged([before], [r], what)
        return out

    def diagnose(got: torch.Tensor, r: torch.Tensor, where: str) -> None:
        r64 = r.double()
        k = r.shape[1]
        s = r64.sum(1, keepdim=True)
        want = rloo_advantages(r64)
        if _close(got, want):
            return
        total, count = r64.sum(), r64.numel()
        wrong = [
            (r64 - r64.mean(1, keepdim=True),
             "each answer is in its own baseline: you subtracted the plain group mean, which "
             "includes the answer itself (that shrinks every advantage by (k - 1) / k and makes "
             "the baseline depend on the action it judges). Leave the answer out: the mean of "
             "the OTHER k - 1 returns"),
            (r64 - (s - r64) / k,
             "you divided the sum of the other answers' returns by k; there are k - 1 of them"),
            (r64 - s / (k - 1),
             "you divided the sum of ALL k returns by k - 1: leave the answer's own return out of "
             "the sum first"),
            (r64, "there is no baseline: the advantage is the return minus the mean return of the "
                  "prompt's other answers"),
            (r64 - (total - r64) / (count - 1),
             "your baseline averages the other answers of the whole batch, across prompts: "
             "only the other answers to the SAME prompt (the same row) are comparable"),
            (r64 - r64.mean(),
             "your baseline is the mean over the whole batch: use the other answers to the same "
             "prompt (the same row)"),
            ((r64 - r64.mean(1, keepdim=True)) / (r64.std(1, keepdim=True, unbiased=False) + 1e-4),
             "that is GRPO's normalised advantage (minus the group mean, divided by the group "
             "std); RLOO subtracts the leave-one-out mean and does not divide"),
            ((r64 - r64.mean(1, keepdim=True)) / (r64.std(1, keepdim=True) + 1e-4),
             "that is GRPO's normalised advantage (minus the group mean, divided by the group "
             "std); RLOO subtracts the leave-one-out mean and does not divide"),
            ((s - r64) / (k - 1) - r64, "the sign is flipped: return minus baseline, not baseline "
                                        "minus return"),
        ]
        for value, message in wrong:
            if got.shape == value.shape and torch.allclose(got.detach().double(), value, rtol=1e-4, atol=1e-4):
                raise AssertionError(f"{where}: {message}")
        raise AssertionError(f"{where}: expected {_show(want)}, got {_show(got)}")

    def test() -> None:
        r = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.5, 0.5, -1.0, 2.0]])
        got = call(r, "rloo_advantages")
        diagnose(got, r, f"for returns {r.tolist()}")
        g = torch.Generator().manual_seed(2)
        for k in (2, 3, 8):
            for dtype in (torch.float32, torch.float64):
                r = (torch.randn(5, k, generator=g, dtype=torch.float64) * 3 + 4).to(dtype)
                got = call(r, f"rloo_advantages on [5, {k}] returns")
                diagnose(got, r, f"for random returns of 5 prompts x {k} answers ({dtype})")
                shifted = call(r + 10.0, "rloo_advantages(returns + 10)")
                expect(_close(shifted, rloo_advantages(r.double())),
                       "adding the same constant to every return must not change the advantages")
        r = torch.tensor([[2.0, -1.0]])
        got = call(r, "rloo_advantages with k = 2")
        diagnose(got, r, "with k = 2 answers (each one's baseline is the other)")

    return check("rloo_advantages", test)


# ----------------------------------------------------------------------------------------------
def _ppo_inputs(seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    n, t = 6, 5
    lengths = [5, 2, 4, 1, 3, 5]
    old, _, mask = _tokens(n, t, lengths, seed=seed, dtype=torch.float64)
    delta = (torch.rand(n, t, generator=g, dtype=torch.float64) - 0.5) * 1.4  # ratios 0.5 .. 2
    # every case on both sides of the clip range, with both signs of advantage
    delta[:, 0] = torch.tensor([0.5, -0.5, 0.5, -0.5, 0.05, -0.05], dtype=torch.float64)
    new = (old + delta).to(dtype)
    adv = torch.tensor([1.5, -2.0, 0.7, -0.3, 2.5, -1.1], dtype=dtype)
    return new, old.to(dtype), adv, mask


def _ppo_reference(new, old, adv, mask, clip):
    return ppo_clip_loss(new.double(), old.double(), adv.double(), mask, clip)


def _ppo_wrong(new, old, adv, mask, clip) -> list[tuple[torch.Tensor, str]]:
    new, old, a = new.double(), old.double(), adv.double()[:, None]
    m = mask.double()
    r = torch.exp(new - old)
    lo, hi = 1 - clip, 1 + clip

    def tok_mean(x):
        return (x * m).sum() / m.sum()

    def surrogate(ratio):
        return torch.minimum(ratio * a, ratio.clamp(lo, hi) * a)

    good = surrogate(r)
    return [
        (-tok_mean(torch.maximum(r * a, r.clamp(lo, hi) * a)),
         "you took the max of the two terms; PPO takes the MIN (the pessimistic bound): the "
         "clipped term may only ever lower the objective, so the policy gains nothing from moving "
         "the ratio past 1 ± clip in the direction its advantage favours"),
        (tok_mean(good),
         "the sign is wrong: this is the objective, to be maximised. The loss to minimise is its "
         "negative, -min(ratio * A, clip(ratio) * A)"),
        (-tok_mean(surrogate(torch.exp(old - new))),
         "the ratio is inverted: it is pi_theta / pi_old = exp(logprobs - old_logprobs), the "
         "policy being updated over the one that sampled"),
        (-tok_mean(surrogate(new - old)),
         "the ratio is not exponentiated: logprobs - old_logprobs is the LOG-ratio; the ratio is "
         "exp(logprobs - old_logprobs), 1 when nothing changed"),
        (-tok_mean(surrogate(new / old)),
         "you divided the log-probabilities; the ratio of probabilities is "
         "exp(logprobs - old_logprobs)"),
        (-tok_mean(torch.minimum(r * a, r * a.clamp(lo, hi))),
         "you clipped the advantage; PPO clips the RATIO to [1 - clip, 1 + clip] and multiplies "
         "by the unclipped advantage"),
        (-tok_mean(r * a.clamp(lo, hi)),
         "you clipped the advantage; PPO clips the RATIO to [1 - clip, 1 + clip] and multiplies "
         "by the unclipped advantage"),
        (-tok_mean(torch.minimum(r * a, (r * a).clamp(lo, hi))),
         "you clipped the product ratio * A; PPO clips the RATIO to [1 - clip, 1 + clip], then "
         "multiplies by the advantage"),
        (-tok_mean((r * a).clamp(lo, hi)),
         "you clipped the product ratio * A; PPO clips the RATIO to [1 - clip, 1 + clip], then "
         "multiplies by the advantage"),
        (-tok_mean(r * a),
         "there is no clipping: this is the plain importance-weighted policy gradient loss; "
         "take the min with clip(ratio, 1 - clip, 1 + clip) * A"),
        (-tok_mean(r.clamp(lo, hi) * a),
         "you only kept the clipped term; PPO takes the min of the clipped and the unclipped term"),
        (-good.mean(),
         "the mean runs over padding too: average over the valid tokens only (mask, then divide "
         "by the number of valid tokens)"),
        (-(good * m).sum() / m.numel(),
         "you masked the padding but divided by every position, padding included: divide by the "
         "number of valid tokens"),
        (-(good * m).sum(),
         "you summed over tokens; the loss is the MEAN over valid tokens, so the step size does "
         "not grow with the batch"),
        (-((good * m).sum(1) / m.sum(1)).mean(),
         "you averaged each answer's tokens, then the answers (GRPO's original form, which gives "
         "a short answer's tokens more weight); this exercise, like rmcourse.rl.ppo_clip_loss, "
         "averages over all valid tokens of the batch at once"),
    ]


def check_ppo_clip_loss(fn: Callable) -> bool:
    """Exercise: ppo_clip_loss(logprobs[N, T], old_logprobs[N, T], advantages[N], mask[N, T],
    clip=0.2) -> scalar: mean over valid tokens of -min(r A, clip(r, 1 - clip, 1 + clip) A),
    r = exp(logprobs - old_logprobs), with no gradient through old_logprobs."""

    def test() -> None:
        for seed, dtype, clip in ((0, torch.float32, 0.2), (1, torch.float64, 0.2), (2, torch.float32, 0.1)):
            new, old, adv, mask = _ppo_inputs(seed, dtype)
            where = f"({dtype}, clip = {clip})"
            lp = new.clone().requires_grad_(True)
            old_lp = old.clone().requires_grad_(True)  # as if it came out of the same graph
            before = [new.clone(), old.clone(), adv.clone(), mask.clone()]
            out = fn(lp, old_lp, adv, mask, clip) if clip != 0.2 else fn(lp, old_lp, adv, mask)
            expect(out is not None, "ppo_clip_loss returned None: did you forget `return`?")
            expect(isinstance(out, torch.Tensor), f"ppo_clip_loss returned {type(out).__name__}, "
                                                  "expected a torch.Tensor (no .item(), no numpy)")
            if out.numel() != 1:
                raise AssertionError(f"ppo_clip_loss returned shape {tuple(out.shape)}: reduce to one "
                                     "number, the mean over valid tokens")
            value = as_number(out, "ppo_clip_loss")
            want = float(_ppo_reference(new, old, adv, mask, clip))
            if not _near(value, want):
                for wrong, message in _ppo_wrong(new, old, adv, mask, clip):
                    if _near(value, float(wrong)):
                        raise AssertionError(f"{where} {message}")
                raise AssertionError(f"{where} expected the loss {want:.6f}, got {value:.6f}")
            expect(out.requires_grad, "the loss must stay connected to logprobs, so that "
                                      "loss.backward() reaches the policy (no .detach(), no numpy)")
            out.backward()
            if old_lp.grad is not None and old_lp.grad.abs().max() > 0:
                raise AssertionError(f"{where} the gradient flows into old_logprobs: detach them. "
                                     "They are the sampling policy's numbers, constants of the "
                                     "update; if they come from the same graph (the first PPO "
                                     "epoch), the ratio is exp(x - x) and its gradient vanishes")
            ref_lp = new.clone().double().requires_grad_(True)
            ppo_clip_loss(ref_lp, old.double(), adv.double(), mask, clip).backward()
            expect(lp.grad is not None and torch.allclose(lp.grad.double(), ref_lp.grad, rtol=1e-4, atol=1e-6),
                   f"{where} the loss value is right but its gradient with respect to logprobs is not: "
                   "clip with torch operations (clamp, minimum, where) on the ratio itself, so tokens "
                   "whose ratio left the clip range in the direction the advantage favours get "
                   "no gradient")
            _unchanged(before, [new, old, adv, mask], "ppo_clip_loss")

        # no change yet (first PPO epoch): ratio 1, loss -mean advantage per valid token
        new, old, adv, mask = _ppo_inputs(4)
        value = as_number(fn(old.clone(), old.clone(), adv, mask, 0.2), "ppo_clip_loss at ratio 1")
        want = float(-(adv[:, None].double() * mask).sum() / mask.sum())
        expect(_near(value, want), f"when logprobs == old_logprobs every ratio is 1 and the loss is "
                                   f"minus the token-weighted mean advantage {want:.5f}; got {value:.5f}")

    return check("ppo_clip_loss", test)


# ----------------------------------------------------------------------------------------------
def _pair(out: Any, what: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    expect(out is not None, f"{what} returned None: did you forget `return`?")
    if isinstance(out, dict):
        missing = {"k1", "k3"} - set(out)
        expect(not missing, f"{what} returned a dict without {sorted(missing)}: return "
                            "{'k1': ..., 'k3': ...}")
        k1, k3 = out["k1"], out["k3"]
    else:
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               f"{what} returned {type(out).__name__}; return {{'k1': ..., 'k3': ...}} (or a pair (k1, k3))")
        k1, k3 = out
    return as_tensor(k1, f"{what}['k1']", (n,)), as_tensor(k3, f"{what}['k3']", (n,))


def check_kl_estimators(fn: Callable) -> bool:
    """Exercise: kl_estimators(logprobs[N, T], ref_logprobs[N, T], mask[N, T]) -> {'k1': [N],
    'k3': [N]}: per-answer sums over valid tokens of k1 = log(pi / pi_ref) and
    k3 = pi_ref / pi - 1 - log(pi_ref / pi)."""

    def test() -> None:
        cases = [(6, 8, [8, 3, 1, 5, 8, 2], 11, torch.float32), (6, 8, [8, 3, 1, 5, 8, 2], 12, torch.float64)]
        g = torch.Generator().manual_seed(5)
        lengths = torch.randint(1, 10, (20,), generator=g).tolist()
        cases.append((20, 9, lengths, 13, torch.float32))
        for n, t, lengths, seed, dtype in cases:
            lp, ref, mask = _tokens(n, t, lengths, seed=seed, dtype=dtype, spread=1.5)
            before = [lp.clone(), ref.clone(), mask.clone()]
            k1, k3 = _pair(fn(lp, ref, mask), "kl_estimators", n)
            _unchanged(before, [lp, ref, mask], "kl_estimators")
            want = kl_estimators(lp.double(), ref.double(), mask)
            where = f"({dtype}, answers of {lengths} valid tokens)"
            m = mask.double()
            x = ref.double() - lp.double()  # log(pi_ref / pi) per token
            cnt = m.sum(1)
            if not _close(k1, want["k1"]):
                wrong = [
                    (-want["k1"], "k1 has the wrong sign: it is log(pi / pi_ref) = logprobs - "
                                  "ref_logprobs, positive on average when the tokens come from pi"),
                    (-x.sum(1), "k1 sums over the padding too: sum only the valid tokens (mask)"),
                    (want["k1"] / cnt, "k1 is the per-token MEAN; the KL of an answer is the SUM over "
                                       "its tokens (the log-probability of a sequence is a sum)"),
                    (want["k1"].abs(), "k1 is not an absolute value: it may be negative on one answer "
                                       "(only its average is the KL)"),
                ]
                for value, message in wrong:
                    if _close(k1, value):
                        raise AssertionError(f"{where} {message}")
                raise AssertionError(f"{where} k1: expected {_show(want['k1'])}, got {_show(k1)}")
            if not _close(k3, want["k3"]):
                per_tok = torch.exp(x) - 1 - x
                wrong = [
                    ((torch.exp(-x) - 1 + x) * m,
                     "k3 has the ratio inverted: it uses r = pi_ref / pi (exp(ref_logprobs - "
                     "logprobs)), the ratio whose expectation under pi is 1; with pi / pi_ref it "
                     "is no longer an unbiased estimate of KL(pi || pi_ref)"),
                    ((torch.exp(x) - x) * m,
                     "k3 misses the -1: it is (r - 1) - log r, r = pi_ref / pi; without the -1 "
                     "every token adds 1"),
                    ((torch.exp(x) - 1 + x) * m,
                     "the log term of k3 has the wrong sign: (r - 1) - log r, r = pi_ref / pi"),
                    (per_tok, "k3 sums over the padding too: sum only the valid tokens (mask)"),
                    (0.5 * x ** 2 * m, "that is k2 = (log r)^2 / 2; the exercise asks for "
                                       "k3 = (r - 1) - log r, which is unbiased"),
                ]
                if _close(k3, (per_tok * m).sum(1) / cnt):
                    raise AssertionError(f"{where} k3 is the per-token MEAN; the KL of an answer is "
                                         "the SUM over its tokens (the log-probability of a sequence "
                                         "is a sum)")
                for value, message in wrong:
                    if _close(k3, value.sum(1)):
                        raise AssertionError(f"{where} {message}")
                seq = (x * m).sum(1)
                if _close(k3, torch.exp(seq) - 1 - seq):
                    raise AssertionError(f"{where} you applied k3 to the whole answer's ratio "
                                         "pi_ref(y) / pi(y), a product of per-token ratios: also "
                                         "unbiased, but its variance grows quickly with the length. "
                                         "The exercise (like rmcourse.rl, and GRPO's KL term) applies "
                                         "k3 to each token's ratio and sums over the answer's tokens")
                raise AssertionError(f"{where} k3: expected {_show(want['k3'])}, got {_show(k3)}")
            expect(bool((k3.detach() >= -1e-6).all()), "k3 must be >= 0 on every answer")

        # the same policy: both estimators are exactly 0
        lp, _, mask = _tokens(4, 5, [5, 2, 3, 1], seed=14)
        k1, k3 = _pair(fn(lp, lp.clone(), mask), "kl_estimators(pi, pi)", 4)
        expect(_close(k1, torch.zeros(4)) and _close(k3, torch.zeros(4)),
               f"for pi = pi_ref both estimates must be 0 on every answer, got k1 {_show(k1)}, "
               f"k3 {_show(k3)}")

    return check("kl_estimators", test)


# ----------------------------------------------------------------------------------------------
def hacking_signal(optimised, held_out, ddof: int = 0) -> np.ndarray:
    """The reference of exercise 5: [C] per checkpoint, how far the optimised proxy's mean score
    has risen past a held-out reward model's, each in units of its own spread at checkpoint 0:

        (mean opt[c] - mean opt[0]) / std opt[0] - (mean held[c] - mean held[0]) / std held[0]

    ``optimised`` and ``held_out`` are [C checkpoints, N answers]: both models' scores of the
    same N answers sampled at each checkpoint."""
    opt = np.asarray(optimised, dtype=np.float64)
    held = np.asarray(held_out, dtype=np.float64)
    if opt.ndim != 2 or opt.shape != held.shape or opt.shape[1] < 2:
        raise ValueError(f"optimised and held_out must be [checkpoints, answers >= 2] of one shape, "
                         f"got {opt.shape} and {held.shape}")

    def z(s):
        return (s.mean(1) - s[0].mean()) / s[0].std(ddof=ddof)

    return z(opt) - z(held)


def _as_vector(value: Any, what: str, c: int) -> np.ndarray:
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} returned {type(value).__name__}, expected {c} numbers") from None
    expect(arr.shape == (c,), f"{what} returned shape {arr.shape}, expected ({c},): one value per "
                              "checkpoint (the mean over the answers)")
    expect(bool(np.all(np.isfinite(arr))), f"{what} returned a non-finite value: {arr}")
    return arr


def check_hacking_signal(fn: Callable) -> bool:
    """Exercise: hacking_signal(optimised[C, N], held_out[C, N]) -> [C]: the rise of the
    optimised proxy's mean score minus the held-out model's, each standardised by its mean and
    std over the answers of checkpoint 0 (population or sample std, either is accepted)."""

    def diagnose(got: np.ndarray, opt: np.ndarray, held: np.ndarray, where: str) -> None:
        o, h = opt.astype(np.float64), held.astype(np.float64)
        wants = [hacking_signal(o, h, 0), hacking_signal(o, h, 1)]
        if any(np.allclose(got, w, rtol=RTOL, atol=ATOL) for w in wants):
            return
        mo, mh = o.mean(1), h.mean(1)
        wrong = [(-w, "the sign is flipped: the optimised proxy's rise minus the held-out model's "
                      "(positive when the proxy runs ahead)") for w in wants]
        wrong += [
            (mo - mh, "you compared the raw scores of the two models: a reward model's scores have "
                      "an arbitrary offset and scale (Bradley-Terry only fixes differences), so the "
                      "raw gap means nothing. Measure each model's rise from checkpoint 0 in units "
                      "of its own spread there"),
            ((mo - mo[0]) - (mh - mh[0]),
             "you subtracted the start but did not divide by the start's spread: the two models' "
             "scores live on different scales, so a rise of 1 means different things. Divide each "
             "model's rise by its std over the answers at checkpoint 0"),
            (mo / o[0].std() - mh / h[0].std(),
             "the signal must be 0 at checkpoint 0: subtract each model's mean score at the start "
             "before dividing"),
            (mo / mo[0] - mh / mh[0],
             "you took the ratio of mean scores to the start's: reward scores have no natural zero "
             "(any constant can be added), so ratios are arbitrary. Subtract the start mean, divide "
             "by the start std"),
        ]
        for ddof in (0, 1):
            wrong += [
                ((mo - mo[0]) / o.std(1, ddof=ddof) - (mh - mh[0]) / h.std(1, ddof=ddof),
                 "you divided by each checkpoint's own spread: normalise by the spread at "
                 "checkpoint 0 (the start), one fixed unit for the whole run"),
                ((mo - mo[0]) / o.std(ddof=ddof) - (mh - mh[0]) / h.std(ddof=ddof),
                 "you divided by the spread of all checkpoints pooled, which grows as the policy "
                 "moves: normalise by the spread at checkpoint 0 only"),
                ((mo - mo[0]) / o[0].std(ddof=ddof) - (mh - mh[0]) / o[0].std(ddof=ddof),
                 "you divided both models by the optimised proxy's spread: each model is measured "
                 "in units of ITS OWN std at checkpoint 0"),
            ]
        for value, message in wrong:
            if np.allclose(got, value, rtol=1e-4, atol=1e-4):
                raise AssertionError(f"{where}: {message}")
        if abs(got[0]) > 1e-6:
            raise AssertionError(f"{where}: the signal is {got[0]:.4f} at checkpoint 0; measured "
                                 "against the start it must be 0 there")
        raise AssertionError(f"{where}: expected {np.round(wants[0], 4).tolist()} (population std; "
                             f"with the sample std {np.round(wants[1], 4).tolist()}), got "
                             f"{np.round(got, 4).tolist()}")

    def test() -> None:
        # hand-made: the held-out model is an affine copy of the proxy (scale 10, offset -3): they
        # agree, so the signal is 0 everywhere
        opt = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 2.5, 4.5], [2.0, 2.0, 3.0, 5.0]])
        held = 10.0 * opt - 3.0
        got = _as_vector(fn(opt, held), "hacking_signal", 3)
        if not np.allclose(got, 0.0, atol=ATOL):
            diagnose(got, opt, held, "two models that agree up to offset and scale (held = 10 * "
                                     "proxy - 3) must give 0 at every checkpoint")
        # hand-made: the proxy rises by 1 start-std per checkpoint, the held-out model stays flat
        held = np.array([[5.0, 7.0, 9.0, 11.0]] * 3)
        got = _as_vector(fn(opt, held), "hacking_signal", 3)
        diagnose(got, opt, held, "the proxy rising, the held-out model flat")
        rng = np.random.default_rng(9)
        for dtype in (np.float32, np.float64):
            c, n = 6, 40
            drift = np.linspace(0, 1.5, c)[:, None]
            opt = (rng.normal(size=(c, n)) * 0.8 + 2.0 + drift).astype(dtype)
            held = (rng.normal(size=(c, n)) * 3.0 - 5.0 + 2.0 * drift * np.r_[0, 1, 1, 0, -1, -2][:, None]).astype(dtype)
            before = (opt.copy(), held.copy())
            got = _as_vector(fn(opt, held), "hacking_signal", c)
            expect(np.array_equal(before[0], opt) and np.array_equal(before[1], held),
                   "hacking_signal changed its input arrays in place: the caller still needs them")
            diagnose(got, opt, held, f"random scores of {c} checkpoints x {n} answers ({np.dtype(dtype).name})")

    return check("hacking_signal", test)
