"""Is a reward model's P(chosen > rejected) a probability you can trust? Calibration tools.

A Bradley-Terry reward model implies p = sigmoid(r_chosen - r_rejected). The model predicts the
side with p > 0.5 and its *confidence* is max(p, 1 - p). Calibration asks: among pairs where the
model is 80% confident, is it right 80% of the time? The expected calibration error (ECE) bins the
confidences and averages |accuracy - confidence| weighted by bin size (Guo et al. 2017, "On
Calibration of Modern Neural Networks", arXiv 1706.04599, which also introduced temperature
scaling: divide the logits by one scalar T fitted on validation NLL).

The seed note paired p(chosen) with "the model preferred chosen" (r_chosen > r_rejected) instead of
"chosen is truly better", and compared a Python list with a float (a TypeError). That pairing is
not a calibration measure: the "accuracy" is 1 whenever p > 0.5 and 0 otherwise, so with its ten
bins on [0, 1] (0.5 is a bin edge) the seed's ECE equals 1 - mean(max(p, 1 - p)), the model's
average uncertainty. It never looks at the labels: a confidently wrong model passes it (chapter 05
shows one). Here confidence and correctness always refer to the predicted side, and correctness
to the labels.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit

from rmcourse.validation import as_count, as_float_array, as_number

__all__ = [
    "predicted_side_confidence",
    "reliability_table",
    "expected_calibration_error",
    "reliability_diagram",
    "pairwise_nll",
    "fit_temperature",
    "apply_temperature",
    "brier_score",
]


def _as_array(values, name: str, allow_bool: bool = False) -> np.ndarray:
    # Strings, None, booleans (unless allowed), NaN/inf and empty input are refused with a
    # message naming `name` (rmcourse.validation).
    return as_float_array(values, name, allow_bool=allow_bool)


def _pair(chosen, rejected) -> tuple[np.ndarray, np.ndarray]:
    c = _as_array(chosen, "chosen")
    r = _as_array(rejected, "rejected")
    if c.shape != r.shape:
        raise ValueError(f"chosen and rejected differ in length: {c.size} vs {r.size}")
    return c, r


def _labels(labels, n: int) -> np.ndarray:
    if labels is None:
        return np.ones(n)
    y = _as_array(labels, "labels", allow_bool=True)
    if y.size != n:
        raise ValueError(f"labels has {y.size} entries for {n} pairs")
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("labels must be in [0, 1] (1 = chosen preferred; fractions = vote shares)")
    return y


def predicted_side_confidence(chosen, rejected, labels=None) -> tuple[np.ndarray, np.ndarray]:
    """Confidence max(p, 1 - p) of the predicted side, p = sigmoid(r_c - r_r), and its correctness.

    `labels` (1 = chosen is preferred, the default for (chosen, rejected) pairs; 0 = rejected is)
    say which side is right. A tie (p = 0.5) predicts no side: confidence 0.5, counted as wrong,
    as ties are in pairwise accuracy.
    """
    c, r = _pair(chosen, rejected)
    y = _labels(labels, c.size)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1 here (which side the annotator preferred)")
    p = expit(c - r)
    confidence = np.maximum(p, 1.0 - p)
    margin = c - r
    correct = ((margin > 0) & (y == 1)) | ((margin < 0) & (y == 0))
    return confidence, correct


def _conf_correct(confidence, correct, low: float) -> tuple[np.ndarray, np.ndarray]:
    conf = _as_array(confidence, "confidence")
    corr = _as_array(correct, "correct", allow_bool=True)
    if conf.size != corr.size:
        raise ValueError(f"confidence and correct differ in length: {conf.size} vs {corr.size}")
    if not np.all((corr == 0) | (corr == 1)):
        raise ValueError("correct must hold booleans or 0/1")
    if np.any(conf < low) or np.any(conf > 1.0):
        raise ValueError(
            f"confidence must lie in [{low}, 1]; got min {conf.min():.3f}, max {conf.max():.3f} "
            "(for P(chosen) rather than the predicted side's confidence, pass low=0.0)"
        )
    return conf, corr


def reliability_table(confidence, correct, n_bins: int = 10, low: float = 0.5) -> pd.DataFrame:
    """Equal-width bins on [low, 1]: count, mean confidence, accuracy and the gap per bin.

    `low=0.5` suits the predicted side's confidence (it never falls below 0.5); use `low=0.0` for
    a probability of a fixed side. The last bin is closed on the right and the first on the left.
    """
    n_bins = as_count(n_bins, "n_bins")
    low = as_number(low, "low", low=0.0, high=1.0, high_open=True)
    conf, corr = _conf_correct(confidence, correct, low)
    edges = np.linspace(low, 1.0, n_bins + 1)
    idx = np.clip(np.floor((conf - low) / (1.0 - low) * n_bins).astype(int), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = idx == b
        n = int(mask.sum())
        mean_conf = float(conf[mask].mean()) if n else float("nan")
        acc = float(corr[mask].mean()) if n else float("nan")
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": n,
                     "mean_confidence": mean_conf, "accuracy": acc,
                     "gap": acc - mean_conf if n else float("nan")})
    return pd.DataFrame(rows)


def expected_calibration_error(confidence, correct, n_bins: int = 10, low: float = 0.5) -> float:
    """ECE = sum over bins of (n_b / N) * |accuracy_b - mean confidence_b| (empty bins skipped)."""
    table = reliability_table(confidence, correct, n_bins=n_bins, low=low)
    filled = table[table["n"] > 0]
    return float((filled["n"] / filled["n"].sum() * filled["gap"].abs()).sum())


def reliability_diagram(confidence, correct, n_bins: int = 10, ax=None, low: float = 0.5,
                        label: str | None = None):
    """Plot accuracy against mean confidence per bin (the diagonal = perfect calibration).

    Returns (ax, table) where table is `reliability_table(...)`; marker size grows with bin count.
    """
    import matplotlib.pyplot as plt

    table = reliability_table(confidence, correct, n_bins=n_bins, low=low)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    filled = table[table["n"] > 0]
    ece = float((filled["n"] / filled["n"].sum() * filled["gap"].abs()).sum())
    ax.plot([low, 1.0], [low, 1.0], ls="--", color="grey", lw=1, label="perfect calibration")
    sizes = 20 + 200 * filled["n"] / filled["n"].max()
    text = f"{label + ': ' if label else ''}ECE = {ece:.3f}"
    ax.plot(filled["mean_confidence"], filled["accuracy"], "-", alpha=0.6)
    ax.scatter(filled["mean_confidence"], filled["accuracy"], s=sizes, label=text, zorder=3)
    ax.set_xlabel("confidence of the predicted side" if low == 0.5 else "predicted probability")
    ax.set_ylabel("accuracy in bin")
    ax.set_xlim(low - 0.02, 1.02)
    ax.set_ylim(min(low, float(filled["accuracy"].min())) - 0.05, 1.05)
    ax.legend(loc="upper left", fontsize=8)
    return ax, table


def pairwise_nll(chosen, rejected, labels=None, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under p = sigmoid((r_c - r_r) / T).

    `labels` default to 1 (chosen preferred); fractional labels (vote shares) give the
    cross-entropy against the share.
    """
    c, r = _pair(chosen, rejected)
    y = _labels(labels, c.size)
    t = as_number(temperature, "temperature", low=0.0, low_open=True)
    z = (c - r) / t
    return float(-(y * log_expit(z) + (1 - y) * log_expit(-z)).mean())


def fit_temperature(chosen, rejected, labels=None, bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """The T minimising validation NLL of sigmoid((r_c - r_r) / T) (bounded search on log T).

    T > 1 means the model was over-confident (its reward differences were too large). Fit on
    validation pairs, never the test pairs you then report on. When every pair is ordered right
    and labels are all 1, the NLL keeps falling as T -> 0, so T lands on the lower bound: pass
    labels that include disagreements (e.g. annotator votes) for a meaningful fit.
    """
    c, r = _pair(chosen, rejected)
    y = _labels(labels, c.size)
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"bounds must be a (low, high) pair of numbers, got {bounds!r}")
    lo = as_number(bounds[0], "bounds[0]", low=0.0, low_open=True)
    hi = as_number(bounds[1], "bounds[1]", low=0.0, low_open=True)
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    if np.all(c == r):
        raise ValueError("all reward differences are zero: the temperature is not identifiable")
    result = minimize_scalar(
        lambda log_t: pairwise_nll(c, r, y, float(np.exp(log_t))),
        bounds=(np.log(lo), np.log(hi)), method="bounded", options={"xatol": 1e-6},
    )
    return float(np.exp(result.x))


def apply_temperature(rewards, temperature: float):
    """Rewards divided by T (same type back: NumPy, torch or float); use on chosen and rejected."""
    t = as_number(temperature, "temperature", low=0.0, low_open=True)
    if isinstance(rewards, (bool, np.bool_)) or rewards is None or isinstance(rewards, (str, bytes)):
        raise TypeError(f"rewards must be numbers, got {type(rewards).__name__}")
    if isinstance(rewards, (int, float, np.number)):
        return as_number(rewards, "rewards") / t
    checked = _as_array(rewards, "rewards")  # NaN, strings and the like are refused here
    if isinstance(rewards, (list, tuple)):
        return checked / t
    return rewards / t


def brier_score(probabilities, outcomes) -> float:
    """Mean squared error between predicted probabilities and 0/1 outcomes (or vote shares)."""
    p = as_float_array(probabilities, "probabilities", low=0.0, high=1.0,
                       range_hint="probabilities are fractions in [0, 1], not percentages")
    y = as_float_array(outcomes, "outcomes", allow_bool=True, low=0.0, high=1.0,
                       range_hint="0/1 outcomes or vote shares in [0, 1]")
    if p.size != y.size:
        raise ValueError(f"probabilities and outcomes differ in length: {p.size} vs {y.size}")
    return float(np.mean((p - y) ** 2))
