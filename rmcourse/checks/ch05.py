"""Checkers for chapter 05 (evaluating a reward model). Each takes the learner's function.

Every checker compares against `rmcourse.rewardbench`, `rmcourse.calibration`, `rmcourse.ranking`
or SciPy on small hand-made and random inputs, and names the typical mistake it sees.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from scipy.special import expit

from scipy.stats import kendalltau

from rmcourse.calibration import expected_calibration_error, fit_temperature, predicted_side_confidence
from rmcourse.checking import as_number, check, expect
from rmcourse.ranking import seed_kendall_tau

__all__ = [
    "check_section_score",
    "check_rewardbench_overall",
    "check_expected_calibration_error",
    "check_fit_temperature",
    "check_kendall_tau",
    "check_predicted_side_confidence",
]


_number = as_number  # shared with the other chapters' checkers


# ----------------------------------------------------------------------------------------------
def check_section_score(fn: Callable) -> bool:
    """Exercise: section_score(accuracies, weights, subsets) -> weighted section accuracy."""

    def test() -> None:
        weights = {"math-prm": 984, "hep-python": 164, "hep-go": 164}
        subsets = ["math-prm", "hep-python", "hep-go"]
        acc = {"math-prm": 1.0, "hep-python": 0.0, "hep-go": 0.0}
        got = _number(fn(acc, weights, subsets), "section_score")
        want = 984 / (984 + 2 * 164)
        if abs(got - 1 / 3) < 1e-6:
            raise AssertionError("section_score returned 1/3, the plain mean of the subsets: weight "
                                 "each subset's accuracy by its example count")
        expect(abs(got - want) < 1e-6, f"section_score returned {got:.4f}, expected "
                                       f"sum(acc*n)/sum(n) = {want:.4f}")
        # a subset listed in the section but absent from the results is skipped, not a 0
        partial = {"math-prm": 1.0, "hep-python": 0.0}
        got = _number(fn(partial, weights, subsets), "section_score")
        want = 984 / (984 + 164)
        if abs(got - 984 / (984 + 2 * 164)) < 1e-6:
            raise AssertionError("a subset with no results (hep-go) was counted: sum only over "
                                 "the subsets present in `accuracies`")
        expect(abs(got - want) < 1e-6, f"with hep-go missing section_score returned {got:.4f}, "
                                       f"expected {want:.4f} (skip subsets without results)")
        # accuracies of subsets from other sections must not leak in
        extra = {**acc, "alpacaeval-easy": 0.0}
        got = _number(fn(extra, {**weights, "alpacaeval-easy": 100}, subsets), "section_score")
        expect(abs(got - 984 / (984 + 2 * 164)) < 1e-6,
               "a subset outside `subsets` changed the score: use only the section's subsets")
        rng = np.random.default_rng(0)
        for _ in range(3):
            names = [f"s{i}" for i in range(5)]
            w = {s: int(rng.integers(1, 300)) for s in names}
            a = {s: float(rng.random()) for s in names}
            want = sum(a[s] * w[s] for s in names) / sum(w.values())
            got = _number(fn(a, w, names), "section_score")
            expect(abs(got - want) < 1e-6, f"on random subsets section_score returned {got:.4f}, "
                                           f"expected {want:.4f}")

    return check("section_score", test)


# ----------------------------------------------------------------------------------------------
def check_rewardbench_overall(fn: Callable) -> bool:
    """Exercise: rewardbench_overall(sections, prior=None) -> four-section mean or prior variant."""

    def test() -> None:
        sections = {"chat": 0.9, "chat_hard": 0.5, "safety": 0.75, "reasoning": 0.25}
        got = _number(fn(sections), "rewardbench_overall(sections)")
        expect(abs(got - 0.6) < 1e-9, f"without prior sets the score is the plain mean of the "
                                      f"four sections (0.6), got {got:.4f}")
        got = _number(fn(sections, 0.3), "rewardbench_overall(sections, prior=0.3)")
        want = (2 * 2.4 + 0.3) / 9
        if abs(got - (2.4 + 0.3) / 5) < 1e-9:
            raise AssertionError("the prior sets got the same weight as a section; they count half: "
                                 "(2 * (sum of sections) + prior) / 9")
        if abs(got - (2 * 2.4 + 0.3) / 8) < 1e-9:
            raise AssertionError("divide by 9 (= 2 * 4 sections + 1 prior), not 8")
        expect(abs(got - want) < 1e-9, f"with prior 0.3 expected (2*2.4 + 0.3)/9 = {want:.4f}, "
                                       f"got {got:.4f}")
        got0 = _number(fn(sections, 0.0), "rewardbench_overall(sections, prior=0.0)")
        expect(abs(got0 - 4.8 / 9) < 1e-9, "prior=0.0 is a real score of 0, not 'no prior sets': "
                                           "test `prior is None`, not `if prior`")

    return check("rewardbench_overall", test)


# ----------------------------------------------------------------------------------------------
def _calibration_sample(seed: int, scale: float, n: int = 4000):
    rng = np.random.default_rng(seed)
    margin = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < expit(margin)).astype(float)
    model_margin = scale * margin
    p = expit(model_margin)
    confidence = np.maximum(p, 1 - p)
    correct = ((model_margin > 0) == (labels == 1)).astype(float)
    return model_margin, labels, confidence, correct


def check_expected_calibration_error(fn: Callable) -> bool:
    """Exercise: expected_calibration_error(confidence, correct, n_bins) on bins over [0.5, 1]."""

    def test() -> None:
        # a probe where one global gap, bins over [0, 1] and bins over [0.5, 1] all differ
        conf, right = np.array([0.55, 0.7, 0.95]), np.array([0.0, 1.0, 1.0])
        got = _number(fn(conf, right, 4), "expected_calibration_error")
        if abs(got - abs(right.mean() - conf.mean())) < 1e-9:
            raise AssertionError("you computed one global gap |mean(correct) - mean(confidence)|; "
                                 "bin the confidences (n_bins equal bins on [0.5, 1]) and average "
                                 "each bin's gap, weighted by its share of the pairs")
        if abs(got - 0.1) < 1e-9:  # 4 bins on [0, 1]: only the two upper bins are ever used
            raise AssertionError("the bins span [0, 1]; a predicted side's confidence is always "
                                 ">= 0.5, so use n_bins equal bins on [0.5, 1]")
        got = _number(fn(np.array([0.6, 0.6, 0.9]), np.array([1.0, 1.0, 0.0]), 2),
                      "expected_calibration_error")
        want = 2 / 3 * 0.4 + 1 / 3 * 0.9
        if abs(got - abs(2 / 3 - 0.7)) < 1e-9:
            raise AssertionError("the bins span [0, 1]; a predicted side's confidence is always "
                                 ">= 0.5, so use n_bins equal bins on [0.5, 1]")
        if abs(got - (0.4 + 0.9) / 2) < 1e-9:
            raise AssertionError("bins were averaged with equal weight: weight each bin's "
                                 "|accuracy - confidence| by its share of the pairs")
        expect(abs(got - want) < 1e-9, f"on confidences [0.6, 0.6, 0.9], correct [1, 1, 0], 2 bins "
                                       f"over [0.5, 1] expected {want:.4f}, got {got:.4f}")
        # the top edge belongs to the last bin
        got = _number(fn(np.array([1.0, 0.5]), np.array([1.0, 0.0]), 5), "expected_calibration_error")
        expect(abs(got - 0.25) < 1e-9, f"confidences exactly 1.0 and 0.5 must fall into the last and "
                                       f"first bins (expected 0.25, got {got:.4f}); is one of them dropped "
                                       "by a strict < or > at a bin edge?")
        for scale in (1.0, 3.0):
            _, _, conf, corr = _calibration_sample(1, scale)
            want = expected_calibration_error(conf, corr, n_bins=10)
            got = _number(fn(conf, corr, 10), "expected_calibration_error")
            wide = expected_calibration_error(conf, corr, n_bins=10, low=0.0)
            if abs(got - wide) < 1e-9 and abs(want - wide) > 1e-6:
                raise AssertionError("the bins span [0, 1]; a predicted side's confidence is always "
                                     ">= 0.5, so use n_bins equal bins on [0.5, 1]")
            expect(abs(got - want) < 1e-6, f"on a sample with reward scale {scale} expected ECE "
                                           f"{want:.4f}, got {got:.4f}")

    return check("expected_calibration_error", test)


# ----------------------------------------------------------------------------------------------
def check_fit_temperature(fn: Callable) -> bool:
    """Exercise: fit_temperature(margins, labels) -> T minimising the NLL of sigmoid(margin / T)."""

    def test() -> None:
        for scale in (3.0, 0.5):
            margin, labels, _, _ = _calibration_sample(2, scale, n=6000)
            want = fit_temperature(margin, np.zeros_like(margin), labels)
            got = _number(fn(margin, labels), "fit_temperature")
            if abs(got - 1 / want) < 0.05 * (1 / want):
                raise AssertionError(f"fit_temperature returned {got:.3f} = 1/T: the probability is "
                                     "sigmoid(margin / T), and over-confident rewards need T > 1")
            expect(got > 0, f"fit_temperature returned {got}; T must be positive")
            expect(abs(got - want) < 0.03 * want,
                   f"rewards scaled by {scale} need T about {want:.3f}, got {got:.3f}")

    return check("fit_temperature", test)


# ----------------------------------------------------------------------------------------------
def _pair_counts(x: np.ndarray, y: np.ndarray) -> dict[str, int]:
    """Over all unordered pairs i < j: concordant, discordant, tied in x only, in y only, in both."""
    out = {"concordant": 0, "discordant": 0, "tied_x": 0, "tied_y": 0, "tied_both": 0}
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx == 0 and dy == 0:
                out["tied_both"] += 1
            elif dx == 0:
                out["tied_x"] += 1
            elif dy == 0:
                out["tied_y"] += 1
            elif dx == dy:
                out["concordant"] += 1
            else:
                out["discordant"] += 1
    return out


def _tau_mistakes(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """What the usual wrong versions of tau-b return on (x, y), each with the message for it."""
    k = _pair_counts(x, y)
    c, d = k["concordant"], k["discordant"]
    n0 = len(x) * (len(x) - 1) / 2
    ties_as_concordant = c + k["tied_x"] + k["tied_y"] + k["tied_both"]
    return {
        "this is tau-a, (C - D) / (n(n-1)/2): with ties the denominator must leave out the pairs tied "
        "in x and, separately, those tied in y: sqrt((n0 - n1) * (n0 - n2))": (c - d) / n0,
        "this is Goodman-Kruskal gamma, (C - D) / (C + D): tau-b keeps the pairs tied in only one of "
        "the two rankings in its denominator": (c - d) / (c + d) if c + d else float("nan"),
        "tied pairs were counted as concordant (a >= or <= where the comparison must be strict): a "
        "pair tied in either ranking is neither concordant nor discordant":
            (ties_as_concordant - d) / n0,
    }


def check_kendall_tau(fn: Callable) -> bool:
    """Exercise: kendall_tau(x, y) = tau-b by counting concordant and discordant pairs."""

    def test() -> None:
        quality = np.array([3.0, 1.0, 4.0, 2.0, 5.0, 0.0])
        got = _number(fn(quality, quality / 10), "kendall_tau")
        if abs(got - seed_kendall_tau(quality, quality / 10)) < 1e-9 and abs(got - 1.0) > 1e-9:
            raise AssertionError(f"a perfect ordering gave {got:.3f}: argsort returns item indices in "
                                 "score order, not ranks; compare the two score arrays pair by pair")
        if abs(got - 2.0) < 1e-9:
            raise AssertionError("a perfect ordering gave 2: every unordered pair was counted twice "
                                 "(i, j and j, i); count each pair once, i < j")
        expect(abs(got - 1.0) < 1e-9, f"identical orderings must give tau = 1, got {got:.3f}")
        got = _number(fn(quality, -quality), "kendall_tau")
        expect(abs(got + 1.0) < 1e-9, f"reversed orderings must give tau = -1, got {got:.3f}: is a "
                                      "discordant pair (x and y moving in opposite directions) "
                                      "subtracted?")
        got = _number(fn(list(quality), list(quality)), "kendall_tau(lists)")
        expect(abs(got - 1.0) < 1e-9, "kendall_tau must also accept plain Python lists")

        x = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 4.0, 5.0])
        y = np.array([1.0, 3.0, 2.0, 2.0, 5.0, 5.0, 4.0])
        want = float(kendalltau(x, y).statistic)
        got = _number(fn(x, y), "kendall_tau")
        if abs(got - want) > 1e-9:
            for message, value in _tau_mistakes(x, y).items():
                if abs(got - value) < 1e-9:
                    raise AssertionError(message)
        expect(abs(got - want) < 1e-9, f"with ties, x = {x.tolist()} and y = {y.tolist()} give tau-b = "
                                       f"{want:.4f} (scipy.stats.kendalltau), got {got:.4f}")

        rng = np.random.default_rng(5)
        for n in (2, 9, 15):
            a = rng.integers(0, 4, n).astype(float)  # many ties
            b = a + rng.integers(-2, 3, n)
            if len(set(a)) < 2 or len(set(b)) < 2:
                continue
            want = float(kendalltau(a, b).statistic)
            got = _number(fn(a, b), "kendall_tau")
            expect(abs(got - want) < 1e-9, f"on {n} random scores with ties expected tau-b {want:.4f} "
                                           f"(scipy.stats.kendalltau), got {got:.4f}")

        try:
            value = fn(np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0]))
        except ValueError:
            pass
        except ZeroDivisionError:
            raise AssertionError("when one side gives every item the same score, tau-b is 0/0: raise a "
                                 "ValueError saying so instead of dividing by zero") from None
        else:
            raise AssertionError(f"x = [2, 2, 2] (every item tied) returned {value!r}: tau-b is "
                                 "undefined there (0/0); raise a ValueError that says so")
        try:
            fn(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0]))
        except ValueError:
            pass
        else:
            raise AssertionError("x and y of different lengths must raise a ValueError: they must "
                                 "score the same items")

    return check("kendall_tau", test)


# ----------------------------------------------------------------------------------------------
def _as_vector(value: Any, what: str, n: int) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise AssertionError(f"{what} must be an array of numbers, got {type(value).__name__}") from None
    expect(arr.shape == (n,), f"{what} has shape {arr.shape}, expected ({n},): one value per pair")
    return arr


def check_predicted_side_confidence(fn: Callable) -> bool:
    """Exercise: predicted_side(chosen_rewards, rejected_rewards, labels) -> (confidence, correct)."""

    def test() -> None:
        chosen = np.array([2.0, 0.0, 1.0, 0.5, 0.0])
        rejected = np.array([0.0, 2.0, 1.0, 0.0, 3.0])
        labels = np.array([1, 1, 1, 0, 0])
        out = fn(chosen, rejected, labels)
        expect(isinstance(out, tuple) and len(out) == 2,
               f"predicted_side must return (confidence, correct), got {type(out).__name__}")
        conf = _as_vector(out[0], "confidence", 5)
        corr = _as_vector(out[1], "correct", 5)
        p = expit(chosen - rejected)
        want_conf, want_corr = predicted_side_confidence(chosen, rejected, labels)
        if np.any(conf > 1) or np.any(conf < 0):
            raise AssertionError("confidence must be a probability: the sigmoid of the reward gap, "
                                 "not the gap itself")
        if np.allclose(conf, p):
            raise AssertionError("confidence is p(chosen), the learning document's pairing (seed "
                                 "errata 10): the confidence of a prediction is that of the side "
                                 "predicted, max(p, 1 - p), never below 0.5")
        if np.allclose(conf, np.where(labels == 1, p, 1 - p)):
            raise AssertionError("confidence is the probability given to the side the label prefers; "
                                 "calibration asks how sure the model was of ITS OWN choice, "
                                 "max(p, 1 - p), whether or not that choice was right")
        expect(np.allclose(conf, want_conf), f"confidence should be max(p, 1 - p) = "
                                             f"{np.round(want_conf, 3).tolist()}, got "
                                             f"{np.round(conf, 3).tolist()}")
        expect(np.all((corr == 0) | (corr == 1)), "correct must hold booleans or 0/1")
        if np.array_equal(corr, (chosen > rejected).astype(float)):
            raise AssertionError("correct ignores the labels: it says whether the model preferred the "
                                 "first answer (the learning document's 'accuracy'), not whether the "
                                 "predicted side is the one the label prefers")
        if corr[2] == 1:
            raise AssertionError("a tie (equal rewards, p = 0.5) predicts no side: count it as wrong, "
                                 "as pairwise accuracy does")
        expect(np.array_equal(corr, want_corr.astype(float)),
               f"correct should be {want_corr.astype(int).tolist()} for rewards {chosen.tolist()} vs "
               f"{rejected.tolist()} with labels {labels.tolist()}, got {corr.astype(int).tolist()}")

        rng = np.random.default_rng(7)
        c, r = rng.normal(size=50), rng.normal(size=50)
        y = rng.integers(0, 2, 50)
        conf, corr = (_as_vector(v, name, 50) for v, name in zip(fn(c, r, y), ("confidence", "correct")))
        want_conf, want_corr = predicted_side_confidence(c, r, y)
        expect(np.allclose(conf, want_conf) and np.array_equal(corr, want_corr.astype(float)),
               "on 50 random pairs with random labels the confidences or the correctness differ from "
               "the predicted side's")

    return check("predicted_side", test)
