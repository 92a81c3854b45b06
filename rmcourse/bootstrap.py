"""Bootstrap confidence intervals for the numbers a notebook claims (means and paired differences).

A claim like "model A is more accurate than model B" is only as good as the test set is large.
`mean_ci` resamples the units (pairs, prompts, items) with replacement and reports the
percentile interval of the mean; `paired_difference_ci` does the same for the per-unit
difference of two methods scored on the SAME units, which is much tighter than comparing two
separate intervals (the units' difficulty cancels).

Several values per unit (a [prompts, samples] array: several samples scored per prompt) are NOT
independent units: resampling them one by one would pretend the test set is `samples` times
larger and give an interval that is too narrow. A 2-D array is therefore bootstrapped by
**cluster**: its rows (the first axis, the units) are resampled whole, i.e. the row means are
bootstrapped. Put the unit on the first axis. Numbers are checked by `rmcourse.validation`
(booleans are fine: "was this pair ranked right").
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np

from rmcourse.validation import as_float_array, as_number

__all__ = ["Interval", "mean_ci", "paired_difference_ci", "MIN_BOOT"]

#: The fewest resamples `mean_ci` accepts: fewer give a percentile interval that moves with the seed.
MIN_BOOT = 100


def as_numbers(values: Any, name: str, **kwargs: Any) -> np.ndarray:
    """`rmcourse.validation.as_float_array`, also for other sequences of numbers (a datasets
    `Column` such as `ds["words"]`, a `range`): they are read as a list, as NumPy and torch read
    them before these checks. Shared by the modules of chapters 05-08b."""
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes, list, tuple)):
        values = list(values)
    return as_float_array(values, name, **kwargs)


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


def _units(x: Any, name: str) -> np.ndarray:
    """`x` as a float64 array of shape [units] or [units, values per unit], checked."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    arr = as_numbers(x, name, ndim=None, allow_bool=True)
    if arr.ndim > 2:
        raise ValueError(f"{name} must be 1-D [units] or 2-D [units, values per unit], got shape "
                         f"{tuple(arr.shape)}")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(arr.shape)}: no values per unit")
    return arr


def _values(x: Any, name: str) -> np.ndarray:
    arr = _units(x, name)
    if arr.ndim == 2:  # a cluster per row: bootstrap the rows' means (see the module docstring)
        arr = arr.mean(axis=1)
    arr = arr.reshape(-1)
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 values to bootstrap, got {arr.size}")
    return arr


def _check(n_boot: int, level: float, seed: Any = 0) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, Integral):
        raise TypeError(f"n_boot must be an int >= {MIN_BOOT}, got {type(n_boot).__name__} {n_boot!r}")
    if n_boot < MIN_BOOT:
        raise ValueError(f"n_boot must be an int >= {MIN_BOOT}, got {n_boot!r}")
    level = as_number(level, "level")
    if not 0.5 < level < 1.0:
        hint = " (a fraction such as 0.95, not a percentage)" if 50 < level < 100 else ""
        raise ValueError(f"level must be in (0.5, 1), got {level}{hint}")
    if seed is not None and not isinstance(seed, (np.random.Generator, np.random.SeedSequence)) and (
            isinstance(seed, bool) or not isinstance(seed, Integral)):
        raise TypeError(f"seed must be an int (or a numpy Generator), got {type(seed).__name__} {seed!r}")


def mean_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of per-unit values (e.g. 0/1 correct per pair) with a percentile bootstrap interval.

    `values`: [units], or [units, values per unit] for a clustered bootstrap over the first axis
    (rows resampled whole; the estimate is the mean of the row means, which is the overall mean
    when every row has the same number of values). `n_boot` >= 100, `level` a fraction in (0.5, 1).
    """
    _check(n_boot, level, seed)
    v = _values(values, "values")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return Interval(float(v.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)), level)


def paired_difference_ci(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of a - b over the same units, with a percentile bootstrap interval (units resampled
    together, so what the two methods share cancels). 2-D [units, values per unit] inputs are
    bootstrapped by cluster, as in `mean_ci`; `a` and `b` must have the same shape."""
    x, y = _units(a, "a"), _units(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must score the same units: {x.size} vs {y.size} values"
                         + (f" (shapes {tuple(x.shape)} and {tuple(y.shape)})" if x.size == y.size else ""))
    return mean_ci(x - y, n_boot=n_boot, level=level, seed=seed)
