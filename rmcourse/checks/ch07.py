"""Checkers for chapter 07 (LLM judges and generative reward models).

Each checker runs the learner's function on hand-made inputs whose right answers are known
(`rmcourse.judges` and `rmcourse.generative` give the reference; the both-orders verdict's is
`_swap_verdict` below), and names the typical mistake when it sees one: a parser that invents
scores, an expected score that is really an argmax, a "debiased" judge that forgot which position
the answer was in, a both-orders verdict that averages or lets one order decide, a pair builder
that crashes on None or keeps ties, and a p("Yes") that is not normalised or overflows.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from rmcourse.checking import as_number, check, expect
from rmcourse.generative import yes_probability
from rmcourse.judges import best_vs_worst_pairs, debiased_preference, expected_score, parse_score

__all__ = [
    "check_parse_score",
    "check_expected_score",
    "check_debiased_preference",
    "check_build_pairs",
    "check_yes_probability",
    "check_swap_consistent_verdict",
]


def _tensor(value: Any, what: str, n: int) -> torch.Tensor:
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    try:
        t = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} returned {type(value).__name__}, expected a tensor of {n} numbers") from None
    expect(t.shape == (n,), f"{what} returned shape {tuple(t.shape)}, expected ({n},): one value per row")
    return t


# ----------------------------------------------------------------------------------------------
# (judgement, low, high, what a wrong answer on it usually means)
PARSE_CASES = [
    ("The response is relevant and helpful.\nScore: 4", 0, 5, ""),
    ("It says 37 + 48 = 75, which is wrong. Score: 1", 0, 5,
     "the first number in the text is not the score: read the number after 'Score:'"),
    ("First guess Score: 2. After checking the sum again, Score: 5", 0, 5,
     "the rubric concludes with the score, so take the LAST 'Score:'"),
    ("The answer is 75. It is a good answer.", 0, 5,
     "that number is quoted from the answer: read only a stated score ('Score: N', 'N/high', "
     "'N out of high')"),
    ("Score: 9", 0, 5, "a score outside low..high is not a valid judgement: return None"),
    ("Score: 7/10", 0, 5, "'7/10' is a score on another scale; on a 0-5 rubric return None"),
    ("Score: 4/10", 0, 5, "'4/10' is a score on another scale even though 4 lies in 0..5: check the "
     "denominator, not only the range"),
    ("About 2/3 of the steps are right.", 0, 5,
     "'2/3' is a fraction with another denominator, not a score out of 5: 'N/high' counts only "
     "when the denominator is `high`"),
    ("I would give it 4 out of 5.", 0, 5, "'N out of high' states a score too"),
    ("score: 3/5", 0, 5, "'Score: N/high' is N (and matching is case-insensitive)"),
    ("8/10, accurate and complete", 1, 10, "'N/high' states a score on the 1-10 scale"),
    ("Step 1 is fine. Step 2 is fine. Overall no score.", 0, 5,
     "step numbers are not scores: return None when no score is stated"),
]


def check_parse_score(fn: Callable) -> bool:
    """Exercise: parse_score(text, low, high) -> float | None, never a made-up score."""

    def test() -> None:
        for text, low, high, mistake in PARSE_CASES:
            want = parse_score(text, low, high)
            got = fn(text, low, high)
            shown = repr(text if len(text) < 60 else text[:57] + "...")
            if want is None:
                if got is not None and not isinstance(got, bool) and got in (0, low):
                    raise AssertionError(f"{shown}: you returned {got!r} for a judgement with no valid "
                                         "score; never invent one: return None so the caller can drop it")
                expect(got is None, f"{shown}: expected None, got {got!r}: {mistake}")
                continue
            expect(got is not None, f"{shown}: expected {want:g}, got None: {mistake or 'look for Score: N'}")
            got = as_number(got, f"parse_score({shown})")
            expect(got == want, f"{shown}: expected {want:g}, got {got:g}" + (f": {mistake}" if mistake else ""))

    return check("parse_score", test)


# ----------------------------------------------------------------------------------------------
def check_expected_score(fn: Callable) -> bool:
    """Exercise: expected_score(logprobs [N, K], values [K]) -> Tensor [N]."""

    def test() -> None:
        probs = torch.tensor([[0.05, 0.05, 0.10, 0.10, 0.30, 0.10],   # mass 0.7: must be renormalised
                              [0.30, 0.02, 0.02, 0.02, 0.02, 0.30],   # bimodal: mean != argmax
                              [1 / 6] * 6])
        lp = probs.log()
        values = torch.arange(6, dtype=torch.float32)
        want = expected_score(lp, values)
        got = _tensor(fn(lp, values), "expected_score", 3)
        if torch.allclose(got, probs.argmax(1).float()):
            raise AssertionError("you returned the most likely digit (an argmax); the expected score "
                                 "averages the digits, weighted by their probabilities")
        if torch.allclose(got, probs @ values, atol=1e-4):
            raise AssertionError("the weights do not sum to 1 when the model puts mass on other tokens: "
                                 "renormalise the probabilities over the score tokens first")
        if torch.allclose(got, torch.softmax(lp, dim=0) @ values, atol=1e-4):
            raise AssertionError("you normalised down the columns (dim=0): each ROW is one judgement's "
                                 "distribution over the digits")
        if torch.allclose(got, lp @ values, atol=1e-4):
            raise AssertionError("you weighted the digits by log-probabilities; exponentiate (softmax) first")
        expect(torch.allclose(got, want, atol=1e-4),
               f"expected {want.numpy().round(3)}, got {got.detach().numpy().round(3)}")
        shifted = _tensor(fn(lp, values + 1), "expected_score with values 1..6", 3)
        expect(torch.allclose(shifted, want + 1, atol=1e-4),
               "with values 1..6 the expected score must move up by exactly 1: use `values`, not the "
               "column index")

    return check("expected_score", test)


# ----------------------------------------------------------------------------------------------
def check_debiased_preference(fn: Callable) -> bool:
    """Exercise: debiased_preference(p_ab, p_ba) -> P(a better than b), both orders averaged."""

    def test() -> None:
        p_ab = torch.tensor([0.9, 0.9, 0.2, 0.6])
        p_ba = torch.tensor([0.9, 0.1, 0.7, 0.6])
        want = debiased_preference(p_ab, p_ba)
        got = _tensor(fn(p_ab, p_ba), "debiased_preference", 4)
        if torch.allclose(got, (p_ab + p_ba) / 2):
            raise AssertionError("you averaged p_A over the two orders, but in the second order answer a "
                                 "is in position B: its win probability there is 1 - p_ba")
        if torch.allclose(got, p_ab):
            raise AssertionError("you returned the first order's verdict only; average it with the "
                                 "swapped order's verdict for a")
        if torch.allclose(got, 1 - want):
            raise AssertionError("your result is P(b better than a): flip it")
        expect(torch.allclose(got, want, atol=1e-6),
               f"expected {want.numpy().round(3)}, got {got.detach().numpy().round(3)}")
        always_a = _tensor(fn(torch.tensor([0.97]), torch.tensor([0.97])), "debiased_preference", 1)
        expect(abs(float(always_a) - 0.5) < 1e-6,
               "a judge that always answers 'A' has no preference between the answers: expect 0.5")

    return check("debiased_preference", test)


# ----------------------------------------------------------------------------------------------
def _as_pairs(out: Any) -> list[tuple[str, str, str]]:
    expect(out is not None, "build_pairs returned None: did you forget `return`?")
    expect(isinstance(out, (list, tuple)), f"build_pairs must return a list of dicts, got {type(out).__name__}")
    rows = []
    for i, p in enumerate(out):
        expect(isinstance(p, dict) and {"prompt", "chosen", "rejected"} <= set(p),
               f"pair {i} must be a dict with keys 'prompt', 'chosen', 'rejected', got {p!r}")
        rows.append((p["prompt"], p["chosen"], p["rejected"]))
    return rows


def check_build_pairs(fn: Callable) -> bool:
    """Exercise: build_pairs(prompts, candidates, scores) -> [{prompt, chosen, rejected}, ...]."""

    def test() -> None:
        prompts = ["q0", "q1", "q2", "q3", "q4"]
        cands = [["a0", "a1", "a2", "a3"], ["b0", "b1", "b2", "b3"], ["c0", "c1", "c2", "c3"],
                 ["d0", "d1", "d2", "d3"], ["e0", "e1", "e2", "e3"]]
        scores = [[3, None, 5, 1], [2, 2, 2, 2], [None, 4, None, None], [0, None, 4, 2], [4, 1, 4, 1]]
        want = [(p["prompt"], p["chosen"], p["rejected"])
                for p in best_vs_worst_pairs(prompts, cands, scores).pairs]
        try:
            out = fn(prompts, cands, scores)
        except TypeError as err:
            raise AssertionError(f"a None score crashed your code ({err}); an unparseable judgement must "
                                 "be dropped (and counted), not compared") from None
        got = _as_pairs(out)
        if ("q2", "c1", "c0") in got or ("q2", "c1", "c2") in got or any(r == "a1" or r == "d1" for _, _, r in got):
            raise AssertionError("you treated a None score as a number (e.g. 0); drop unparseable "
                                 "judgements instead of inventing a score for them")
        if any(p == "q1" for p, _, _ in got):
            raise AssertionError("q1's candidates all scored 2: a tie gives no preference, so Self-Rewarding "
                                 "discards that prompt")
        if ("q0", "a3", "a2") in got:
            raise AssertionError("chosen and rejected are swapped: chosen is the HIGHEST-scored candidate")
        if any(p == "q2" for p, _, _ in got):
            raise AssertionError("q2 has only one parseable score: it cannot make a pair")
        # q4 ties at both ends (4, 1, 4, 1): the exercise names no tie-break, so either top
        # candidate may be chosen and either bottom one rejected
        q4_ok = {("q4", c, r) for c in ("e0", "e2") for r in ("e1", "e3")}
        expect(len(got) == len(want) and all(g == w or (g in q4_ok and w in q4_ok) for g, w in zip(got, want)),
               f"expected {want} (for q4 any top-scored chosen and any bottom-scored rejected), got {got}")
        expect(_as_pairs(fn(["x"], [["only one"]], [[3]])) == [],
               "a prompt with a single candidate makes no pair")

    return check("build_pairs", test)


# ----------------------------------------------------------------------------------------------
def check_yes_probability(fn: Callable) -> bool:
    """Exercise: yes_probability(logp_yes, logp_no) -> p(Yes) / (p(Yes) + p(No))."""

    def test() -> None:
        lp_yes = torch.tensor([math.log(0.3), math.log(0.01), -2.0])
        lp_no = torch.tensor([math.log(0.1), math.log(0.03), -2.0])
        want = yes_probability(lp_yes, lp_no)
        got = _tensor(fn(lp_yes, lp_no), "yes_probability", 3)
        if torch.allclose(got, lp_yes.exp(), atol=1e-5):
            raise AssertionError("you returned p(Yes) itself; a zero-shot model puts mass on other tokens, "
                                 "so renormalise over Yes and No")
        if torch.allclose(got, 1 - want, atol=1e-5):
            raise AssertionError("you returned the share of No; the reward is the share of Yes")
        expect(torch.allclose(got, want, atol=1e-5),
               f"expected {want.numpy().round(4)}, got {got.detach().numpy().round(4)}")
        far = _tensor(fn(torch.tensor([-800.0, -1000.0]), torch.tensor([-802.0, -1000.0])),
                      "yes_probability on very small probabilities", 2)
        expect(bool(torch.isfinite(far).all()),
               "with log-probabilities like -800, exp() underflows to 0 and 0 / 0 gives NaN: compute the "
               "share from the difference of the log-probabilities")
        expect(torch.allclose(far, torch.tensor([1 / (1 + math.exp(-2.0)), 0.5]), atol=1e-5),
               f"for log-probs (-800, -802) and (-1000, -1000) expected "
               f"[{1 / (1 + math.exp(-2.0)):.4f}, 0.5], got {far.numpy().round(4)}")

    return check("yes_probability", test)


# ----------------------------------------------------------------------------------------------
def _swap_verdict(p_ab: torch.Tensor, p_ba: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Zheng et al.'s rule: +1 when both orders pick a, -1 when both pick b, 0 otherwise."""
    a_wins = (p_ab > threshold) & (1 - p_ba > threshold)
    b_wins = (1 - p_ab > threshold) & (p_ba > threshold)
    return a_wins.long() - b_wins.long()


def _verdicts(value: Any, what: str, n: int) -> list[int]:
    """A learner's verdicts as a list of ints; booleans and a wrong shape are named."""
    expect(value is not None, f"{what} returned None: did you forget `return`?")
    if isinstance(value, torch.Tensor):
        expect(value.dtype != torch.bool, f"{what} returned booleans (True/False); return +1 (a wins), "
                                          "-1 (b wins) or 0 (a tie) per pair, so that a win for b and a "
                                          "tie are told apart")
        value = value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        raise AssertionError(f"{what} returned booleans (True/False); return +1 (a wins), -1 (b wins) "
                             "or 0 (a tie) per pair, so that a win for b and a tie are told apart")
    try:
        arr = np.asarray(value, dtype=float) if not isinstance(value, np.ndarray) or value.dtype != bool \
            else value
    except (TypeError, ValueError):
        raise AssertionError(f"{what} returned {type(value).__name__}, expected {n} verdicts "
                             "(+1, -1 or 0)") from None
    expect(arr.dtype != bool, f"{what} returned booleans (True/False); return +1 (a wins), -1 (b wins) "
                              "or 0 (a tie) per pair, so that a win for b and a tie are told apart")
    expect(arr.shape == (n,), f"{what} returned shape {arr.shape}, expected ({n},): one verdict per pair")
    bad = [float(v) for v in arr if v not in (-1.0, 0.0, 1.0)]
    if bad:
        raise AssertionError(f"{what} returned {bad[0]}: each verdict is +1 (a wins), -1 (b wins) or 0 "
                             "(a tie), not a probability")
    return [int(v) for v in arr]


def check_swap_consistent_verdict(fn: Callable) -> bool:
    """Exercise: swap_consistent_verdict(p_ab, p_ba, threshold=0.5) -> +1 / -1 / 0 per pair:
    a winner only when both orders pick it (strictly above `threshold`), a tie otherwise."""

    def test() -> None:
        p_ab = torch.tensor([0.9, 0.3, 0.9, 0.6, 0.2, 0.5, 0.7, 0.55, 0.1])
        p_ba = torch.tensor([0.2, 0.8, 0.8, 0.95, 0.3, 0.2, 0.5, 0.45, 0.6])
        want = _swap_verdict(p_ab, p_ba).tolist()   # [1, -1, 0, 0, 0, 0, 0, 1, -1]
        got = _verdicts(fn(p_ab.clone(), p_ba.clone()), "swap_consistent_verdict(p_ab, p_ba)", len(want))
        def same(reference: torch.Tensor, keep: torch.Tensor) -> bool:
            # the learner's verdicts equal `reference` wherever `keep` is True (pairs at exactly
            # 0.5 are left out: a variant may settle them either way)
            return all(g == r for g, r, k in zip(got, reference.long().tolist(), keep.tolist()) if k)

        undecided = (p_ab == 0.5) | (p_ba == 0.5)
        if got == want:
            pass
        elif got == [-w for w in want]:
            raise AssertionError("your verdicts are reversed: +1 means answer a wins (a is the one shown "
                                 "first in p_ab), -1 that b wins")
        elif same(_swap_verdict(p_ab, 1 - p_ba), ~undecided):
            raise AssertionError("p_ba is the probability that the FIRST answer wins when b is first, so "
                                 "it speaks for b: in the swapped order a wins with probability 1 - p_ba. "
                                 "(The third pair, p_ab = 0.9 and p_ba = 0.8, is a judge that picks the first "
                                 "position both times: a tie, not a win for a)")
        elif same(torch.sign(p_ab - p_ba), p_ab != p_ba):
            raise AssertionError("you averaged the two orders (Wang et al.'s rule), which always decides; "
                                 "Zheng et al.'s rule calls a winner only when BOTH orders pick it and a "
                                 "tie (0) when they disagree (the third pair: 0.9 then 0.8, each order picks the "
                                 "first position)")
        elif same(torch.sign(p_ab - 0.5), p_ab != 0.5):
            raise AssertionError("you let the first order (p_ab) decide; the swapped order must agree "
                                 "too, otherwise the pair is a tie")
        elif same(torch.sign(0.5 - p_ba), p_ba != 0.5):
            raise AssertionError("you let the swapped order (p_ba) decide; the first order must agree "
                                 "too, otherwise the pair is a tie")
        elif got[5] != 0 or got[6] != 0:
            raise AssertionError("a probability of exactly 0.5 picks neither answer, so that order "
                                 "does not agree with the other one: the pair is a tie (0). Pairs "
                                 "(0.5, 0.2) and (0.7, 0.5) here; compare strictly (>, <)")
        expect(got == want, f"p_ab = {p_ab.numpy().round(2).tolist()}, p_ba = "
                            f"{p_ba.numpy().round(2).tolist()}: expected {want}, got {got}")
        # a stricter threshold: each order must give the winner more than 0.7
        q_ab = torch.tensor([0.8, 0.8, 0.65, 0.2, 0.8, 0.1])
        q_ba = torch.tensor([0.1, 0.25, 0.1, 0.9, 0.4, 0.75])
        want = _swap_verdict(q_ab, q_ba, 0.7).tolist()   # [1, 1, 0, -1, 0, -1]
        got = _verdicts(fn(q_ab.clone(), q_ba.clone(), threshold=0.7),
                        "swap_consistent_verdict(p_ab, p_ba, threshold=0.7)", len(want))
        if got == _swap_verdict(q_ab, q_ba, 0.5).tolist():
            raise AssertionError("with threshold=0.7 you still decided at 0.5: each order must give the "
                                 "winner a probability above the threshold (the third pair: 0.65 is not enough)")
        if got[4] == 1:
            raise AssertionError("the fifth pair (p_ab = 0.8, p_ba = 0.4): in the swapped order a wins with "
                                 "probability 1 - 0.4 = 0.6, below the threshold 0.7, so the pair is a "
                                 "tie. Apply the threshold to 1 - p_ba, i.e. p_ba < 1 - threshold, "
                                 "not p_ba < threshold")
        expect(got == want, f"threshold=0.7, p_ab = {q_ab.numpy().round(2).tolist()}, p_ba = "
                            f"{q_ba.numpy().round(2).tolist()}: expected {want}, got {got}")

    return check("swap_consistent_verdict", test)
