"""Baselines that carry a reward model's shortcut, so that beating them means something.

The length rule ("the answer with more words wins") is no test of what a model learnt where the
rule is below chance. A fairer control carries the model's *own* lean on length and nothing else:
`length_noise_control` fits the model's reward gaps on the word gaps and replaces everything the
fit leaves over by noise of the same spread. Paired with the model on the same pairs, the model
beats it only if its rewards carry something besides length.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from rmcourse.validation import as_float_array

__all__ = ["LengthNoiseControl", "length_noise_control"]


@dataclass(frozen=True)
class LengthNoiseControl:
    """`p_right[i]`: the probability that the control ranks pair i right; `slope` and `spread`
    of the fit reward_gap ~ slope * word_gap + N(0, spread^2)."""

    p_right: np.ndarray
    slope: float
    spread: float


def length_noise_control(reward_gap: Any, word_gap: Any) -> LengthNoiseControl:
    """The length-plus-noise scorer for pairs with `reward_gap` = r(chosen) - r(rejected) and
    `word_gap` = words(chosen) - words(rejected), where chosen is the better answer.

    The slope is the least-squares fit through 0 (a pair's gaps flip sign with its order); the
    control's gap is slope * word_gap + noise of the residuals' spread, so it ranks a pair right
    with probability Phi(slope * word_gap / spread).
    """
    gap = as_float_array(reward_gap, "reward_gap", ndim=1)
    words = as_float_array(word_gap, "word_gap", ndim=1)
    if gap.shape != words.shape:
        raise ValueError(f"reward_gap {gap.shape} and word_gap {words.shape} must have one entry per pair")
    if len(gap) < 2:
        raise ValueError("need at least 2 pairs to fit the slope and the spread")
    if not np.any(words):
        raise ValueError("every word gap is 0: there is no length signal to fit")
    slope = float(words @ gap / (words @ words))
    spread = float(np.std(gap - slope * words))
    if spread == 0:
        raise ValueError("the reward gaps are exactly slope * word gap: no noise to put in their place")
    return LengthNoiseControl(norm.cdf(slope * words / spread), slope, spread)
