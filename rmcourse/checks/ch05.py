"""Checkers for chapter 05 (evaluating a reward model). Each takes the learner's function.

Every checker compares against `rmcourse.rewardbench`, `rmcourse.calibration` and
`rmcourse.ranking` on small hand-made and random inputs, and names the typical mistake it sees.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from scipy.special import expit

from rmcourse.calibration import expected_calibration_error, fit_temperature
from rmcourse.checking import as_number, check, expect
from rmcourse.ranking import kendall_tau, seed_kendall_tau

__all__ = [
    "check_section_score",
    "check_rewardbench_overall",
    "check_expected_calibration_error",
    "check_fit_temperature",
    "check_kendall_tau",
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
def check_kendall_tau(fn: Callable) -> bool:
    """Exercise: kendall_tau(true_scores, predicted_scores) on the SCORES of the same items."""

    def test() -> None:
        quality = np.array([3.0, 1.0, 4.0, 2.0, 5.0, 0.0])
        got = _number(fn(quality, quality / 10), "kendall_tau")
        if abs(got - seed_kendall_tau(quality, quality / 10)) < 1e-9:
            raise AssertionError(f"a perfect ordering gave {got:.3f}: argsort returns item indices in "
                                 "score order, not ranks; compare the two score arrays directly")
        expect(abs(got - 1.0) < 1e-9, f"identical orderings must give tau = 1, got {got:.3f}")
        got = _number(fn(quality, -quality), "kendall_tau")
        expect(abs(got + 1.0) < 1e-9, f"reversed orderings must give tau = -1, got {got:.3f}")
        rng = np.random.default_rng(3)
        a, b = rng.normal(size=9), rng.normal(size=9)
        got = _number(fn(a, b), "kendall_tau")
        want = kendall_tau(a, b)
        expect(abs(got - want) < 1e-9, f"on random scores expected {want:.4f}, got {got:.4f}")

    return check("kendall_tau", test)
