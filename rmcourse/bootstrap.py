"""Bootstrap confidence intervals for the numbers a notebook claims (means and paired differences).

A claim like "model A is more accurate than model B" is only as good as the test set is large.
`mean_ci` resamples the units (pairs, prompts, items) with replacement and reports the
percentile interval of the mean; `paired_difference_ci` does the same for the per-unit
difference of two methods scored on the SAME units, which is much tighter than comparing two
separate intervals (the units' difficulty cancels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Interval", "mean_ci", "paired_difference_ci"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _values(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=float).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 values to bootstrap, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite value")
    return arr


def _check(n_boot: int, level: float) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must be in (0.5, 1), got {level}")


def mean_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of per-unit values (e.g. 0/1 correct per pair) with a percentile bootstrap interval."""
    _check(n_boot, level)
    v = _values(values, "values")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return Interval(float(v.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)), level)


def paired_difference_ci(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of a - b over the same units, with a percentile bootstrap interval (units resampled
    together, so what the two methods share cancels)."""
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must score the same units: {x.size} vs {y.size} values")
    return mean_ci(x - y, n_boot=n_boot, level=level, seed=seed)
