"""Checkers for chapter 08 (beyond one scalar).

Each checker compares the learner's function with the course's implementation
(`rmcourse.objectives`, `rmcourse.process`, `rmcourse.dpo`, `rmcourse.rewardbench2`) on small
hand-made inputs and names the typical mistake it recognises.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from rmcourse.checking import as_number, as_tensor, check, expect
from rmcourse.dpo import dpo_loss
from rmcourse.objectives import verbosity_penalties
from rmcourse.process import aggregate_step_scores
from rmcourse.rewardbench2 import best_of_n_result

__all__ = [
    "check_gated_reward",
    "check_prm_solution_score",
    "check_dpo_implicit_rewards",
    "check_best_of_4",
    "check_verbosity_penalty",
    "check_odin_extra_loss",
    "check_math_shepherd_labels",
]


def _tensor(value: Any, what: str, shape: tuple) -> torch.Tensor:
    return as_tensor(value, what, shape).detach().float()


# ----------------------------------------------------------------------------------------------
def _gated(scores: torch.Tensor, logits: torch.Tensor, scale: float) -> torch.Tensor:
    return (F.softmax(logits, dim=-1) * scale * scores).sum(-1)


def check_gated_reward(fn: Callable) -> bool:
    """Exercise: gated_reward(objective_scores[N, K], gate_logits[N, K], scale) -> Tensor[N]."""

    def test() -> None:
        scores = torch.tensor([[1.0, -0.5, 2.0], [0.2, 0.4, -1.0], [3.0, 0.0, 0.5], [-1.0, 2.0, 1.0]])
        logits = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [1.5, 0.2, -0.3], [-2.0, 1.0, 0.3]])
        scale = 2.5
        got = _tensor(fn(scores, logits, scale), "gated_reward(scores, logits, 2.5)", (4,))
        want = _gated(scores, logits, scale)
        if torch.allclose(got, (logits * scale * scores).sum(-1), atol=1e-5) or \
                torch.allclose(got, (logits * scores).sum(-1), atol=1e-5):
            raise AssertionError("you mixed with the raw gate logits: turn them into weights with a "
                                 "softmax over the objectives first (non-negative, summing to one)")
        if torch.allclose(got, (F.softmax(logits, dim=0) * scale * scores).sum(-1), atol=1e-5):
            raise AssertionError("your softmax normalised over the responses (dim 0); the weights of "
                                 "ONE prompt must sum to one over the objectives (dim -1)")
        if torch.allclose(got, (torch.sigmoid(logits) * scale * scores).sum(-1), atol=1e-5):
            raise AssertionError("sigmoid weights do not sum to one: ArmoRM's gate uses a softmax")
        if torch.allclose(got, _gated(scores, logits, 1.0), atol=1e-5):
            raise AssertionError("the weights must be multiplied by the learned scale (ArmoRM's "
                                 "logit_scale): a convex mix alone cannot stretch the reward")
        if torch.allclose(got, (F.softmax(logits, dim=-1) * scale * scores).mean(-1), atol=1e-5):
            raise AssertionError("you averaged the weighted objectives; the reward is their SUM")
        expect(torch.allclose(got, want, atol=1e-5),
               f"expected {want.numpy().round(4)}, got {got.numpy().round(4)}")

    return check("gated_reward", test)


# ----------------------------------------------------------------------------------------------
def check_prm_solution_score(fn: Callable) -> bool:
    """Exercise: prm_solution_score(step_probs, how) for how in ("min", "prod")."""

    def test() -> None:
        steps = [0.9, 0.95, 0.2, 0.8]
        for how in ("min", "prod"):
            got = as_number(fn(steps, how), f"prm_solution_score(steps, {how!r})")
            want = aggregate_step_scores(steps, how)
            if abs(got - steps[-1]) < 1e-9:
                raise AssertionError(f"{how!r}: you returned the LAST step's score (0.8), which hides "
                                     "the wrong third step: the solution is only as good as its "
                                     "worst step")
            if abs(got - float(np.mean(steps))) < 1e-9:
                raise AssertionError(f"{how!r}: the mean lets good steps cover a bad one; use the "
                                     "minimum or the product")
            if abs(got - max(steps)) < 1e-9:
                raise AssertionError(f"{how!r}: the maximum rewards the best step, not the solution")
            if how == "min" and abs(got - float(np.prod(steps))) < 1e-9:
                raise AssertionError("'min' returned the product; the product is the other option")
            if how == "prod" and abs(got - min(steps)) < 1e-9:
                raise AssertionError("'prod' returned the minimum; multiply the step probabilities "
                                     "(P(every step is right) if they were independent)")
            if how == "prod" and abs(got - float(np.sum(np.log(steps)))) < 1e-9:
                raise AssertionError("'prod' returned the log of the product; return the product")
            expect(abs(got - want) < 1e-9, f"{how!r}: expected {want:.6f}, got {got:.6f}")
        got = as_number(fn([0.7], "min"), "prm_solution_score([0.7], 'min')")
        expect(abs(got - 0.7) < 1e-9, f"a one-step solution scores its step: expected 0.7, got {got}")

    return check("prm_solution_score", test)


# ----------------------------------------------------------------------------------------------
def check_dpo_implicit_rewards(fn: Callable) -> bool:
    """Exercise: dpo_implicit_rewards(chosen_logps, rejected_logps, ref_chosen_logps,
    ref_rejected_logps, beta) -> (chosen_rewards, rejected_rewards, losses), each Tensor[N]."""

    def test() -> None:
        c = torch.tensor([-120.0, -80.5, -60.0])
        r = torch.tensor([-118.0, -95.0, -61.0])
        rc = torch.tensor([-121.0, -82.0, -59.0])
        rr = torch.tensor([-117.0, -93.0, -62.5])
        beta = 0.1
        out = fn(c, r, rc, rr, beta)
        expect(isinstance(out, (tuple, list)) and len(out) == 3,
               f"return (chosen_rewards, rejected_rewards, losses), got {type(out).__name__}")
        cr = _tensor(out[0], "chosen_rewards", (3,))
        rw = _tensor(out[1], "rejected_rewards", (3,))
        want_l, want_c, want_r = dpo_loss(c, r, rc, rr, beta)
        try:  # a single number equal to the mean loss: name that before the shape check does
            arr = np.asarray(out[2].detach() if isinstance(out[2], torch.Tensor) else out[2], dtype=float)
            one = float(arr.reshape(-1)[0]) if arr.size == 1 else None
        except (TypeError, ValueError, RuntimeError):
            one = None
        if one is not None and abs(one - float(want_l.mean())) < 1e-5:
            raise AssertionError("return one loss per pair (no .mean()): the caller averages")
        losses = _tensor(out[2], "losses", (3,))
        if torch.allclose(cr, beta * c, atol=1e-5):
            raise AssertionError("chosen_rewards = beta * logps forgets the reference: the implicit "
                                 "reward is beta * (log pi - log pi_ref)")
        if torch.allclose(cr, -want_c, atol=1e-5):
            raise AssertionError("the sign is flipped: policy minus reference, not reference minus policy")
        if torch.allclose(cr, c - rc, atol=1e-5):
            raise AssertionError("multiply the log-ratio by beta")
        if torch.allclose(cr, beta * beta * (c - rc), atol=1e-6):
            raise AssertionError("beta is applied twice: the implicit reward is beta * (log pi - "
                                 "log pi_ref), once")
        expect(torch.allclose(cr, want_c, atol=1e-5) and torch.allclose(rw, want_r, atol=1e-5),
               f"chosen_rewards expected {want_c.numpy().round(4)}, got {cr.numpy().round(4)}; "
               f"rejected_rewards expected {want_r.numpy().round(4)}, got {rw.numpy().round(4)}")
        margin = want_c - want_r
        if torch.allclose(losses, -F.logsigmoid(-margin), atol=1e-5):
            raise AssertionError("the loss pushes the wrong way: -logsigmoid(chosen_rewards - "
                                 "rejected_rewards), chosen first")
        if torch.allclose(losses, -F.logsigmoid(beta * margin), atol=1e-5):
            raise AssertionError("the loss multiplies by beta again: the rewards already contain "
                                 "beta, so the loss is -logsigmoid(chosen_rewards - rejected_rewards)")
        if torch.allclose(losses, -F.logsigmoid(margin / beta), atol=1e-5):
            raise AssertionError("the loss uses the log-ratios without beta: the rewards already "
                                 "contain beta, use them")
        if losses.numel() == 3 and torch.allclose(losses, torch.full((3,), float(-F.logsigmoid(margin).mean())), atol=1e-6):
            raise AssertionError("return one loss per pair (no .mean())")
        expect(torch.allclose(losses, want_l, atol=1e-5),
               f"losses expected {want_l.numpy().round(4)}, got {losses.numpy().round(4)}")

    return check("dpo_implicit_rewards", test)


# ----------------------------------------------------------------------------------------------
def check_best_of_4(fn: Callable) -> bool:
    """Exercise: best_of_4(scores) with scores[0] the chosen answer -> 1, 0 or 1/k on ties."""

    def test() -> None:
        cases = [
            ([2.0, 1.0, 0.5, -1.0], "a clean win"),
            ([2.0, 2.5, 0.5, -1.0], "a rejected answer scores higher"),
            ([2.0, 2.0, 0.5, -1.0], "a 2-way tie at the top"),
            ([2.0, 2.0, 2.0, -1.0], "a 3-way tie at the top"),
            ([2.0, 2.0, 2.0, 2.0], "a 4-way tie"),
            ([1.0, 2.0, 1.0, -1.0], "a tie below the top"),
        ]
        for scores, name in cases:
            got = as_number(fn(list(scores)), f"best_of_4({scores})")
            want = best_of_n_result(scores[0], scores[1:])
            tie_at_top = scores[0] == max(scores) and scores.count(max(scores)) > 1
            if tie_at_top and abs(got - 1.0) < 1e-9:
                raise AssertionError(f"{name} {scores}: you counted a tie as a win; RewardBench 2 gives "
                                     "1/k when the chosen answer ties k-way for the maximum")
            if tie_at_top and abs(got) < 1e-9:
                raise AssertionError(f"{name} {scores}: you counted a tie as a loss (RewardBench v1's "
                                     "rule); RewardBench 2 gives 1/k for a k-way tie at the maximum")
            if not tie_at_top and scores[0] != max(scores) and got > 0:
                raise AssertionError(f"{name} {scores}: a rejected answer scores higher, so the item "
                                     f"is lost (0), got {got}")
            expect(abs(got - want) < 1e-9, f"{name} {scores}: expected {want:.4f}, got {got:.4f}")

    return check("best_of_4", test)


# ----------------------------------------------------------------------------------------------
def check_verbosity_penalty(fn: Callable) -> bool:
    """Exercise: verbosity_penalty(r, v, grid, threshold) -> the smallest lambda on the grid with
    Spearman(r - lambda * v, v) <= threshold (1.0 when none)."""

    def test() -> None:
        from scipy.stats import spearmanr

        rng = np.random.default_rng(0)
        v = rng.normal(size=300)
        r = 0.4 * v + rng.normal(size=300)
        grid = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
        got = as_number(fn(r, v, grid, 0.03), "verbosity_penalty(r, v, grid, 0.03)")
        pred = np.stack([r, v], axis=1)
        want = verbosity_penalties(pred, names=("r", "verbosity"), threshold=0.03, grid=grid)["r"]
        if got not in grid and got != 1.0:
            corr = spearmanr(r - want * v, v)[0]
            if abs(got - corr) < 1e-9:
                raise AssertionError("you returned the correlation; return the penalty lambda")
            raise AssertionError(f"the penalty must come from the grid (or be 1.0), got {got}")
        ok = [lam for lam in grid if spearmanr(r - lam * v, v)[0] <= 0.03]
        if ok and abs(got - max(ok)) < 1e-12 and max(ok) != want:
            raise AssertionError("you returned the LARGEST grid value that decorrelates; ArmoRM takes "
                                 "the smallest, so as little as possible is subtracted")
        if got == 1.0 and want != 1.0:
            raise AssertionError(
                f"you fell back to 1.0, but lambda = {want} already brings Spearman(r - lambda * v, v) "
                "down to the threshold: check that you SUBTRACT lambda * v (r - lambda * v, not "
                "r + lambda * v) and that you correlate with the verbosity prediction v, not with r")
        expect(abs(got - want) < 1e-12, f"expected {want}, got {got}")
        # no grid value gets there: ArmoRM's script falls back to 1.0
        got = as_number(fn(r, v, [0.0, 0.01], 0.03), "verbosity_penalty with a grid that is too short")
        expect(abs(got - 1.0) < 1e-12, f"when no grid value brings the correlation down to the "
                                       f"threshold, the penalty is 1.0 (as in ArmoRM's script), got {got}")

    return check("verbosity_penalty", test)


# ----------------------------------------------------------------------------------------------
def _corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (xc.norm() * yc.norm())


def check_odin_extra_loss(fn: Callable) -> bool:
    """Exercise: odin_extra_loss(r_quality, r_length, lengths, w_quality, w_length, length_coef,
    ortho_coef) -> length_coef * (|rho(r_Q, L)| - rho(r_L, L)) + ortho_coef * |w_Q . w_L| (a 0-d tensor)."""

    def test() -> None:
        g = torch.Generator().manual_seed(0)
        lengths = torch.tensor([12.0, 40.0, 25.0, 80.0, 33.0, 51.0, 18.0, 64.0])
        noise = torch.randn(8, generator=g)
        r_q = -0.02 * lengths + noise              # negatively correlated with length
        r_l = 0.03 * lengths + 0.5 * torch.randn(8, generator=g)
        w_q = torch.tensor([0.5, -1.0, 2.0, 0.3])
        w_l = torch.tensor([1.0, 0.4, -0.2, 0.5])  # w_q . w_l = -0.2: negative, so |.| matters
        a, b = 0.7, 1.3
        rq, rl = _corr(r_q, lengths), _corr(r_l, lengths)
        dot = (w_q * w_l).sum()
        want = a * (rq.abs() - rl) + b * dot.abs()
        out = fn(r_q, r_l, lengths, w_q, w_l, a, b)
        got = _tensor(out, "odin_extra_loss(...)", ())
        if abs(float(got) - float(want)) < 1e-4:
            return
        variants = {
            "the length-head term has the wrong sign: the length head should CORRELATE with length, "
            "so the loss rewards rho(r_L, L) (minus sign), it does not penalise it":
                a * (rq.abs() + rl) + b * dot.abs(),
            "the quality head's correlation needs an absolute value: a strongly NEGATIVE correlation "
            "with length is as much a length signal as a positive one":
                a * (rq - rl) + b * dot.abs(),
            "the orthogonality term needs an absolute value: w_Q . w_L < 0 would otherwise lower the "
            "loss without making the heads orthogonal":
                a * (rq.abs() - rl) + b * dot,
            "use the Pearson CORRELATION (covariance divided by both standard deviations), not the "
            "covariance, which grows with the scale of the rewards":
                a * (((r_q - r_q.mean()) * (lengths - lengths.mean())).mean().abs()
                     - ((r_l - r_l.mean()) * (lengths - lengths.mean())).mean()) + b * dot.abs(),
            "the orthogonality term uses the raw weights w_Q . w_L (as in ODIN's paper); you normalised "
            "them (a cosine), which is RLHFlow's variant, not this exercise's formula":
                a * (rq.abs() - rl) + b * (dot / (w_q.norm() * w_l.norm())).abs(),
            "length_coef and ortho_coef are swapped":
                b * (rq.abs() - rl) + a * dot.abs(),
            "each coefficient multiplies its own term: length_coef * (|rho_Q| - rho_L) + "
            "ortho_coef * |w_Q . w_L|":
                rq.abs() - rl + dot.abs(),
        }
        for message, value in variants.items():
            if abs(float(got) - float(value)) < 1e-4:
                raise AssertionError(message)
        raise AssertionError(f"expected {float(want):.4f}, got {float(got):.4f}")

    return check("odin_extra_loss", test)


# ----------------------------------------------------------------------------------------------
def _labels(value: Any, what: str, n_steps: int) -> list[float]:
    """A learner's step labels as a list of floats (bools, numpy arrays and tensors accepted)."""
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (bool, int, float, np.bool_, np.number)) or \
            (isinstance(value, np.ndarray) and value.ndim == 0):
        raise AssertionError(f"{what} returned one number ({value}); return one label per step "
                             f"({n_steps} here): Math-Shepherd labels every step, not the solution")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} returned {type(value).__name__} holding something that is not "
                             "a number: return a list of labels, one float per step") from None
    expect(arr.shape == (n_steps,), f"{what} returned shape {arr.shape}, expected ({n_steps},): one "
                                    "label per step")
    expect(bool(np.all(np.isfinite(arr))), f"{what} returned {arr.tolist()}: every label must be a "
                                           "finite number")
    return arr.tolist()


def _shepherd(answers: list[list[int]], gold: int, soft: bool) -> list[float]:
    hits = [sum(a == gold for a in step) / len(step) for step in answers]
    return hits if soft else [float(h > 0) for h in hits]


def check_math_shepherd_labels(fn: Callable) -> bool:
    """Exercise: math_shepherd_step_labels(completion_answers, gold, soft) -> one label per step:
    hard = 1.0 when any completion from the prefix reaches `gold`, soft = the share that do;
    a step with no completions raises ValueError."""

    def test() -> None:
        gold = 42
        answers = [[42, 42, 42, 42],   # every completion reaches the gold answer
                   [42, 40, 42, 17],   # half of them do
                   [40, 42, 40, 40],   # one lucky completion of four
                   [17, 40, 17, 16],   # none: the only step a hard label calls bad
                   [42, 42, 41, 42]]   # after a bad step, 3 of 4 reach it again
        n = len(answers)
        want_hard, want_soft = _shepherd(answers, gold, False), _shepherd(answers, gold, True)
        hard = _labels(fn([list(a) for a in answers], gold, soft=False),
                       "math_shepherd_step_labels(..., soft=False)", n)
        soft = _labels(fn([list(a) for a in answers], gold, soft=True),
                       "math_shepherd_step_labels(..., soft=True)", n)
        if np.allclose(hard, want_soft) and np.allclose(soft, want_hard):
            raise AssertionError("hard and soft are swapped: the HARD label is 1 when ANY completion "
                                 "reaches the gold answer (0 otherwise), the SOFT label is the share "
                                 "of completions that do")
        if np.allclose(hard, want_soft):
            raise AssertionError("soft=False returned the share of completions that reach the gold "
                                 "answer; the hard label is 1 when at least one does, 0 otherwise")
        if np.allclose(hard, [float(all(a == gold for a in s)) for s in answers]):
            raise AssertionError("your hard label asks that ALL completions reach the gold answer; "
                                 "Math-Shepherd's hard estimation needs only ONE (completion_answers[2] "
                                 "here: 1 of 4 completions reaches 42, so its hard label is 1)")
        if np.allclose(hard, [float(sum(a == gold for a in s) / len(s) >= 0.5) for s in answers]):
            raise AssertionError("your hard label is a majority vote; Math-Shepherd's hard estimation "
                                 "is 1 as soon as ONE completion reaches the gold answer")
        if hard[3] > 0:
            raise AssertionError("none of the completions of step 3 ([17, 40, 17, 16]) reaches the gold "
                                 "answer 42, yet you labelled it good: compare every completion's "
                                 "answer with `gold`, not with another completion's answer")
        if hard[:4] == want_hard[:4] and hard[4] == 0.0:
            raise AssertionError("the last step (completion_answers[4]) is bad in your labels because "
                                 "an earlier step is: labels cumulated across steps are exact labelling "
                                 "('every step so far is valid'), not Math-Shepherd; each step's label "
                                 "comes from ITS OWN completions only (3 of 4 of them reach 42)")
        expect(np.allclose(hard, want_hard), f"soft=False: expected {want_hard}, got {hard}")
        if np.allclose(soft, [sum(a == gold for a in s) for s in answers]):
            raise AssertionError("soft=True returned the NUMBER of completions that reach the gold "
                                 "answer; divide by the number of completions to get the share")
        if np.allclose(soft, [sum(a == s[0] for a in s) / len(s) for s in answers]) or soft[3] > 0:
            raise AssertionError("soft=True counted completions against the wrong target: the share "
                                 "is of completions whose answer equals `gold` (completion_answers[3] has none)")
        if np.allclose(soft, np.minimum.accumulate(want_soft)) or np.allclose(soft, np.cumprod(want_soft)):
            raise AssertionError("the last step's soft label is lower than the share of its own completions "
                                 "that reach 42 (0.75): labels cumulated across steps (a running "
                                 "minimum or product) are not Math-Shepherd's; each step's label "
                                 "comes from its own completions")
        expect(np.allclose(soft, want_soft), f"soft=True: expected {want_soft}, got {soft}")
        # other numbers of completions, and a gold answer of 0 (a falsy value)
        more = [[0, 5, 5, 5, 5, 5, 5, 5], [5, 5, 5, 5, 5, 5, 5, 5], [0, 0, 0, 0, 0, 0, 0, 0]]
        for soft_flag in (False, True):
            got = _labels(fn([list(a) for a in more], 0, soft=soft_flag),
                          f"math_shepherd_step_labels(8 completions per step, gold=0, soft={soft_flag})", 3)
            want = _shepherd(more, 0, soft_flag)
            expect(np.allclose(got, want), f"with 8 completions per step and gold answer 0, soft="
                                           f"{soft_flag}: expected {want}, got {got} (is the number "
                                           "of completions hard-coded, or is 0 treated as 'no answer'?)")
        one = _labels(fn([[7, 3, 7]], 7, soft=True), "math_shepherd_step_labels([[7, 3, 7]], 7, soft=True)", 1)
        expect(abs(one[0] - 2 / 3) < 1e-6, f"a one-step solution with 2 of 3 completions right has soft "
                                           f"label 2/3, got {one[0]}")
        # a step with no completions has no estimate
        for soft_flag in (False, True):
            try:
                out = fn([[], []], gold, soft=soft_flag)
            except ValueError:
                continue
            except Exception as err:  # e.g. ZeroDivisionError from 0 / 0
                raise AssertionError(f"a step with no completions (soft={soft_flag}) must raise "
                                     f"ValueError with a message saying so; you raised "
                                     f"{type(err).__name__}: {err}") from None
            raise AssertionError(f"a step with no completions has no estimate (soft={soft_flag}): raise "
                                 f"ValueError, as the exercise says; you returned {out!r}, a label "
                                 "that no completion supports")

    return check("math_shepherd_step_labels", test)
