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

__all__ = ["FEATURES", "attribute_features", "pair_features", "fit_linear_bt"]

#: One feature per gold weight (`rmcourse.world.GOLD_WEIGHTS`), in the same order.
FEATURES: tuple[str, ...] = ("detail", "polite", "correct", "refusal_mismatch", "padding")

_ATTR_KEYS = ("detail", "polite", "correct", "refuses", "should_refuse", "padding")


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
    if isinstance(attrs, Mapping) or isinstance(attrs, (str, bytes)):
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
    """(chosen features, rejected features) of a pair dataset with `chosen_attrs` / `rejected_attrs`."""
    for column in ("chosen_attrs", "rejected_attrs"):
        if column not in getattr(ds, "column_names", ()):
            raise ValueError(f"missing column {column!r}: pass pairs from rmcourse.world")
    return (attribute_features(ds["chosen_attrs"], features),
            attribute_features(ds["rejected_attrs"], features))


def fit_linear_bt(
    chosen_features: torch.Tensor, rejected_features: torch.Tensor, l2: float = 1e-3
) -> torch.Tensor:
    """Maximum-likelihood weights w of the linear reward r = X @ w from (chosen, rejected) pairs.

    Minimises  sum_pairs -log sigmoid((X_c - X_r) @ w) + l2 * ||w||^2  (the objective of
    `rmcourse.losses.pairwise_loss` summed, plus a small Gaussian prior that keeps w finite when
    the pairs are separable), with a trust-region Newton method and the exact Hessian. There is
    no intercept: a constant added to every reward cancels in r_c - r_r. Returns float64 [k].
    """
    xc, xr = (_as_matrix(x, name) for x, name in ((chosen_features, "chosen_features"),
                                                   (rejected_features, "rejected_features")))
    if xc.shape != xr.shape:
        raise ValueError(f"chosen_features {xc.shape} and rejected_features {xr.shape} must "
                         "have the same shape")
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (math.isfinite(l2) and l2 >= 0):
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
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x.astype(float)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D [n_pairs, n_features] and non-empty, got shape "
                         f"{arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has a non-finite value")
    return arr
