"""One place that turns a learner's numbers into arrays, or says exactly what is wrong with them.

Every evaluation helper in rmcourse (metrics, calibration, Bradley-Terry, RewardBench) takes
rewards, probabilities or scores as a torch tensor, a NumPy array, a pandas Series or a list.
NumPy alone would quietly accept things that are almost always mistakes: the strings "1" and
"0.5" (it parses them), booleans (True becomes 1.0), NaN (it propagates into every mean) and
a 0..100 percentage where a 0..1 fraction is meant. These functions refuse each of them with a
`TypeError` (wrong kind of value) or `ValueError` (right kind, bad value) that names the argument
and the first offending position.
"""
from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["as_float_array", "as_number", "as_count"]


def _describe(value: Any) -> str:
    return type(value).__name__


def as_float_array(
    values: Any,
    name: str,
    *,
    ndim: int | None = 1,
    allow_empty: bool = False,
    allow_bool: bool = False,
    finite: bool = True,
    low: float | None = None,
    high: float | None = None,
    range_hint: str = "",
) -> np.ndarray:
    """A float64 NumPy copy of `values`, checked.

    ndim: required number of dimensions (None: any, scalars included).
    allow_bool: accept booleans (e.g. "was the prediction correct") as 0/1.
    finite: refuse NaN and +-inf. low/high: inclusive bounds; `range_hint` is appended to the
    out-of-range message (e.g. "fractions, not percentages").
    Raises TypeError for strings, None, dicts, sets, generators, objects and (unless allowed)
    booleans; ValueError for a wrong shape, an empty array, non-finite or out-of-range values.
    """
    if values is None or isinstance(values, (str, bytes, dict, set, frozenset)):
        raise TypeError(f"{name} must be a tensor, array or list of numbers, got {_describe(values)}")
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # torch tensor
        if str(values.dtype) == "torch.bool" and not allow_bool:
            raise TypeError(f"{name} holds booleans; pass numbers (rewards, probabilities)")
        if values.is_complex():
            raise TypeError(f"{name} holds complex numbers")
        array = values.detach().to("cpu").double().numpy()
    else:
        if not isinstance(values, (list, tuple, np.ndarray, Real, np.generic)) and not (
            hasattr(values, "to_numpy") and hasattr(values, "dtype")  # pandas Series / Index
        ):
            raise TypeError(f"{name} must be a tensor, array or list of numbers, got {_describe(values)}")
        raw = values.to_numpy() if hasattr(values, "to_numpy") else values
        try:
            raw = np.asarray(raw)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} is ragged (rows of different lengths): {err}") from None
        if raw.dtype.kind in "US":
            flat = raw.reshape(-1)
            raise TypeError(f"{name} must hold numbers, got text ({flat[0]!r} at index 0)")
        if raw.dtype.kind == "b" and not allow_bool:
            raise TypeError(f"{name} holds booleans; pass numbers (rewards, probabilities)")
        if raw.dtype.kind == "c":
            raise TypeError(f"{name} holds complex numbers")
        if raw.dtype.kind in "OV":
            for i, item in enumerate(raw.reshape(-1)):
                if item is None:
                    raise ValueError(f"{name} has a missing value (None) at index {i}")
                if isinstance(item, (bool, np.bool_)) and not allow_bool:
                    raise TypeError(f"{name} holds a boolean at index {i}; pass numbers")
                if not isinstance(item, (Real, np.number, np.bool_)):
                    raise TypeError(f"{name} must hold numbers, got {_describe(item)} {item!r} "
                                    f"at index {i}")
        if raw.dtype.kind == "M" or raw.dtype.kind == "m":
            raise TypeError(f"{name} holds dates or times, not numbers")
        array = raw.astype(np.float64)
    if ndim is not None and array.ndim != ndim:
        what = "one value per pair" if ndim == 1 else f"{ndim} dimensions"
        raise ValueError(f"{name} must be {ndim}-D ({what}), got shape {tuple(array.shape)}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if finite:
        bad = np.flatnonzero(~np.isfinite(array.reshape(-1)))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{name} has a non-finite value ({array.reshape(-1)[i]}) at index {i}")
    hint = f" ({range_hint})" if range_hint else ""
    if low is not None:
        below = np.flatnonzero(array.reshape(-1) < low)
        if below.size:
            i = int(below[0])
            raise ValueError(f"{name} must be >= {low}, got {array.reshape(-1)[i]} at index {i}{hint}")
    if high is not None:
        above = np.flatnonzero(array.reshape(-1) > high)
        if above.size:
            i = int(above[0])
            raise ValueError(f"{name} must be <= {high}, got {array.reshape(-1)[i]} at index {i}{hint}")
    return array


def as_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    range_hint: str = "",
) -> float:
    """`value` as a finite float within the bounds; TypeError for bools, strings, None, arrays."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.number)):
        raise TypeError(f"{name} must be a number, got {_describe(value)} {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {out}")
    if low == 0 and low_open and high is None and out <= 0:
        raise ValueError(f"{name} must be a positive number, got {out}")
    hint = f" ({range_hint})" if range_hint else ""
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {out}{hint}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {out}{hint}")
    return out


def as_count(value: Any, name: str, *, low: int = 1) -> int:
    """`value` as an int >= low; TypeError for bools, floats (even 3.0), strings, None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {_describe(value)} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)
