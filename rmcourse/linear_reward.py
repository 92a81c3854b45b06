"""The smallest reward model: a linear Bradley-Terry reward on the preference world's attributes.

Item-level Bradley-Terry (`rmcourse.bradley_terry.fit_bt`) gives every item its own strength, so
it has nothing to say about an item it never saw. A reward model replaces that table of strengths
by one function shared by all responses, r(x, y) = w . phi(x, y), trained with the same pairwise
likelihood -log sigmoid(r_chosen - r_rejected): Bradley-Terry *amortised* over responses. It
scores responses it never saw, and it can only use what phi shows it.

Here phi are the world's hidden attributes (`rmcourse.world`), named like the keys of
`GOLD_WEIGHTS`, so the fitted weights can be read against the gold weights; chapter 03 replaces
phi by a transformer that has to read the text.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit

from rmcourse.bootstrap import as_numbers
from rmcourse.validation import as_number

__all__ = ["FEATURES", "attribute_features", "pair_features", "fit_linear_bt"]

#: One feature per gold weight (`rmcourse.world.GOLD_WEIGHTS`), in the same order.
FEATURES: tuple[str, ...] = ("detail", "polite", "correct", "refusal_mismatch", "padding")

_ATTR_KEYS = ("detail", "polite", "correct", "refuses", "should_refuse", "padding")


def _check_attribute_values(attrs: Mapping, where: str, keys: Sequence[str] = _ATTR_KEYS) -> None:
    """The world's hidden attributes in `attrs` checked with `rmcourse.world`'s own validators
    (counts for detail / padding, booleans for the rest, None allowed for correct), so that a
    string such as "3" or "False" is refused instead of read as a number or as True. `where`
    names the response in the message (e.g. "attrs[3]"). Missing keys are the caller's check."""
    from rmcourse.world import _check_bool, _check_count

    try:
        for key in keys:
            if key not in attrs:
                continue
            if key in ("detail", "padding"):
                _check_count(key, attrs[key], None)
            else:
                _check_bool(key, attrs[key], allow_none=key == "correct")
    except (TypeError, ValueError) as err:
        raise type(err)(f"{where}: {err}") from None


def _feature(attrs: Mapping, name: str) -> float:
    if name == "correct":  # +1 right claim, -1 wrong claim, 0 no claim: the world's gold formula
        value = attrs["correct"]
        return 0.0 if value is None else (1.0 if value else -1.0)
    if name == "refusal_mismatch":  # refused a benign request, or complied with a harmful one
        return float(bool(attrs["refuses"]) != bool(attrs["should_refuse"]))
    return float(attrs[name])


def attribute_features(
    attrs: Sequence[Mapping], features: Sequence[str] = FEATURES
) -> torch.Tensor:
    """A float64 tensor [n, len(features)]: the named features of each response's attributes.

    `attrs` is a list of attribute dicts (a pair dataset's `chosen_attrs` column). With every
    feature, `attribute_features(attrs) @ GOLD_WEIGHTS` is the gold reward.
    """
    if isinstance(attrs, Mapping) or isinstance(attrs, (str, bytes)) or not hasattr(attrs, "__iter__"):
        raise TypeError("attrs must be a list of attribute dicts (one per response), got "
                        f"{type(attrs).__name__}")
    features = _check_features(features)
    rows = []
    for i, item in enumerate(attrs):
        if not isinstance(item, Mapping):
            raise TypeError(f"attrs[{i}] must be a dict of attributes, got {type(item).__name__}")
        missing = [key for key in _ATTR_KEYS if key not in item]
        if missing:
            raise ValueError(f"attrs[{i}] is missing attribute {missing[0]!r}")
        _check_attribute_values(item, f"attrs[{i}]")
        rows.append([_feature(item, name) for name in features])
    if not rows:
        raise ValueError("attrs is empty: need at least one response")
    return torch.tensor(rows, dtype=torch.float64)


def _check_features(features: Any) -> tuple[str, ...]:
    if isinstance(features, (str, bytes)) or not isinstance(features, Sequence):
        raise TypeError(f"features must be a list of names from {FEATURES}, got {features!r}")
    unknown = [name for name in features if name not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r}; choose from {FEATURES}")
    if len(set(features)) != len(features) or not features:
        raise ValueError(f"features must be distinct and non-empty, got {list(features)}")
    return tuple(features)


def pair_features(ds: Any, features: Sequence[str] = FEATURES) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen features, rejected features) of a pair dataset with `chosen_attrs` / `rejected_attrs`
    (a datasets.Dataset from rmcourse.world, a DataFrame or a dict of columns)."""
    if isinstance(ds, Mapping):
        names = list(ds)
    elif hasattr(ds, "column_names"):
        names = list(ds.column_names)
    elif hasattr(ds, "columns"):
        names = list(ds.columns)
    elif isinstance(ds, (list, tuple)) and ds and all(isinstance(row, Mapping) for row in ds):
        raise TypeError("ds must be a datasets.Dataset (or a dict of columns), got a list of row "
                        "dicts: wrap it as datasets.Dataset.from_list(rows)")
    else:
        raise TypeError(f"ds must be a datasets.Dataset of pairs from rmcourse.world, got "
                        f"{type(ds).__name__}")
    for column in ("chosen_attrs", "rejected_attrs"):
        if column not in names:
            raise ValueError(f"missing column {column!r}: pass pairs from rmcourse.world")
    return (attribute_features(ds["chosen_attrs"], features),
            attribute_features(ds["rejected_attrs"], features))


def fit_linear_bt(
    chosen_features: torch.Tensor, rejected_features: torch.Tensor | None = None, l2: float = 1e-3
) -> torch.Tensor:
    """Maximum-likelihood weights w of the linear reward r = X @ w from (chosen, rejected) pairs.

    Minimises  sum_pairs -log sigmoid((X_c - X_r) @ w) + l2 * ||w||^2  (the objective of
    `rmcourse.losses.pairwise_loss` summed, plus a small Gaussian prior that keeps w finite when
    the pairs are separable), with a trust-region Newton method and the exact Hessian. There is
    no intercept: a constant added to every reward cancels in r_c - r_r. Returns float64 [k].
    """
    if rejected_features is None:
        if isinstance(chosen_features, (tuple, list)) and len(chosen_features) == 2:
            raise TypeError("fit_linear_bt takes chosen_features and rejected_features as two "
                            "arguments, got one (chosen, rejected) pair: unpack it, "
                            "fit_linear_bt(*pair_features(ds))")
        if hasattr(chosen_features, "chosen") and hasattr(chosen_features, "rejected"):
            raise TypeError(f"fit_linear_bt takes two feature matrices, got one "
                            f"{type(chosen_features).__name__}: pass features.chosen, features.rejected")
        raise TypeError("fit_linear_bt needs rejected_features: fit_linear_bt(chosen_features, "
                        "rejected_features)")
    xc, xr = (_as_matrix(x, name) for x, name in ((chosen_features, "chosen_features"),
                                                   (rejected_features, "rejected_features")))
    if xc.shape != xr.shape:
        raise ValueError(f"chosen_features {xc.shape} and rejected_features {xr.shape} must "
                         "have the same shape")
    l2 = as_number(l2, "l2")
    if not (math.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    z = xc - xr
    n = len(z)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        d = z @ w
        nll = np.logaddexp(0.0, -d).sum()  # -log sigmoid(d), finite for any d
        grad = -z.T @ expit(-d)
        return (nll + l2 * w @ w) / n, (grad + 2 * l2 * w) / n

    def hessian(w: np.ndarray) -> np.ndarray:
        d = z @ w
        h = z.T @ (z * (expit(d) * expit(-d))[:, None])
        return (h + 2 * l2 * np.eye(z.shape[1])) / n

    result = minimize(objective, np.zeros(z.shape[1]), jac=True, hess=hessian,
                      method="trust-exact", options={"gtol": 1e-10, "maxiter": 500})
    if l2 == 0 and np.all(z @ result.x > 0):
        warnings.warn("every pair is ordered correctly (the pairs are separable): the maximum-"
                      "likelihood weights are infinite and these are only large; pass l2 > 0",
                      RuntimeWarning, stacklevel=2)
        return torch.from_numpy(result.x)
    grad_norm = float(np.abs(objective(result.x)[1]).max())
    if not result.success and grad_norm > 1e-7:
        warnings.warn(f"fit_linear_bt did not converge: {result.message} (|grad| = "
                      f"{grad_norm:.2e}); separable pairs need l2 > 0", RuntimeWarning, stacklevel=2)
    return torch.from_numpy(result.x)


def _as_matrix(x: Any, name: str) -> np.ndarray:
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a tensor or array [n_pairs, n_features], got "
                        f"{type(x).__name__}")
    if isinstance(x, torch.Tensor) and (x.dtype == torch.bool or x.is_complex()):
        raise TypeError(f"{name} must hold real numbers, got a {x.dtype} tensor")
    # the validator refuses text, booleans, objects; finiteness is checked below, as before
    arr = as_numbers(x, name, ndim=None, allow_empty=True, finite=False)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D [n_pairs, n_features] and non-empty, got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has a non-finite value")
    return arr
