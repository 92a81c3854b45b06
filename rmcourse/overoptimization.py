"""Reward over-optimisation with best-of-n: choose by a proxy reward, judge by the gold reward.

Gao, Schulman & Hilton 2023 ("Scaling Laws for Reward Model Overoptimization", arXiv 2210.10760)
sample n responses, keep the one a proxy reward model likes best, and score it with a gold reward.
The more you optimise (larger n), the further the policy moves from the base policy. Gao et al.
put best-of-n on the x-axis with the analytic expression log n - (n - 1) / n (`kl_best_of_n`).
That is an UPPER BOUND on KL(best-of-n || base) (Beirami et al. 2024, "Theoretical guarantees on
the best-of-n alignment policy", arXiv 2401.01879): tight when no single response carries much
probability, loose when one does (`kl_best_of_n_exact` computes the true value for a finite set
of responses). With d = sqrt(KL), the gold reward follows R(d) = d * (alpha - beta * d): it
rises, peaks at d* = alpha / (2 beta), then falls, because the proxy's errors (e.g. a spurious
preference for padding) dominate the tail it selects from.

`best_of_n_curve` uses the unbiased estimator of E[best-of-n] from a pool of K >= n samples per
prompt (the paper's appendix): sort the pool by proxy; the i-th lowest of K is the maximum of a
uniformly random n-subset with probability C(i - 1, n - 1) / C(K, n). Averaging with these
weights uses every sample of the pool for every n, instead of drawing a few random subsets.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.linalg import lstsq
from scipy.special import gammaln

from rmcourse.bootstrap import as_numbers
from rmcourse.validation import as_number

__all__ = ["kl_best_of_n", "kl_best_of_n_exact", "best_of_n_probabilities", "best_of_n_weights", "expected_best_of_n", "best_of_n_curve",
           "fit_gao_bon", "gao_bon_curve", "fit_gao_rl", "gao_rl_curve", "peak_d", "peak_d_rl", "rejection_subsample"]


def _check_n(n, name: str = "n") -> np.ndarray:
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(int)
        else:
            raise TypeError(f"{name} must be an integer (or integers), got {n!r}")
    if np.any(arr < 1):
        raise ValueError(f"{name} must be >= 1, got {n!r}")
    return arr


def kl_best_of_n(n):
    """log n - (n - 1) / n (0 for n = 1): Gao et al.'s analytic KL of best-of-n, an upper bound.

    The x-axis Gao et al. 2023 use for best-of-n. Beirami et al. 2024 prove it is an upper bound
    on KL(best-of-n || base), reached only in the limit where every response has vanishing
    probability; `kl_best_of_n_exact` gives the true KL of a finite policy. Accepts an int or
    an array of ints.
    """
    arr = _check_n(n).astype(float)
    out = np.log(arr) - (arr - 1.0) / arr
    return float(out) if out.ndim == 0 else out


def _probabilities(probs) -> np.ndarray:
    p = as_numbers(probs, "probs", ndim=None, allow_empty=True, finite=False)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"probs must be a non-empty 1-D array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("probs must be finite and >= 0")
    if abs(p.sum() - 1.0) > 1e-6:
        hint = " (fractions, not percentages)" if abs(p.sum() - 100.0) < 1e-4 else ""
        raise ValueError(f"probs must sum to 1, they sum to {p.sum():.6g}{hint}")
    return p / p.sum()


def best_of_n_probabilities(probs, n: int) -> np.ndarray:
    """The best-of-n policy over finitely many responses with distinct rewards.

    `probs[i]` is the base policy's probability of response i, responses listed in order of
    INCREASING reward. Response i is the best of n independent draws when all n rewards are at
    most its own and not all are below it: F_i^n - F_{i-1}^n, F the cumulative probability.
    """
    p = _probabilities(probs)
    n = int(_check_n(n))
    cdf = np.minimum(np.cumsum(p), 1.0)
    below = np.concatenate([[0.0], cdf[:-1]])
    return cdf ** n - below ** n


def kl_best_of_n_exact(probs, n: int) -> float:
    """KL(best-of-n || base) in nats for a finite policy (`probs` in order of increasing reward).

    Never more than `kl_best_of_n(n)` (Beirami et al. 2024); equal to it only in the limit of
    many responses, none with much probability. Responses of probability 0 contribute 0.
    """
    p = _probabilities(probs)
    q = best_of_n_probabilities(p, n)
    keep = q > 0
    # KL >= 0; at n = 1 the sum is 0 up to rounding, which could print as -3e-18
    return max(0.0, float(np.sum(q[keep] * np.log(q[keep] / p[keep]))))


def best_of_n_weights(n: int, k: int) -> np.ndarray:
    """P(the i-th lowest of k samples is the max of a random n-subset) = C(i-1, n-1) / C(k, n)."""
    n = int(_check_n(n))
    k = int(_check_n(k, "k"))
    if n > k:
        raise ValueError(f"best-of-{n} needs a pool of at least {n} samples, got {k}")
    i = np.arange(1, k + 1)
    w = np.zeros(k)
    ok = i >= n
    # log C(i-1, n-1) - log C(k, n), in log space so large pools do not overflow
    log_num = gammaln(i[ok]) - gammaln(n) - gammaln(i[ok] - n + 1)
    log_den = gammaln(k + 1) - gammaln(n + 1) - gammaln(k - n + 1)
    w[ok] = np.exp(log_num - log_den)
    return w / w.sum()  # sums to 1 exactly in theory (hockey-stick identity); fix rounding


def _matrix(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    if hasattr(x, "to_numpy") and not hasattr(x, "dtype"):  # a DataFrame
        x = x.to_numpy()
    arr = as_numbers(x, name, ndim=None, allow_empty=True, finite=False)  # text, None: refused
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have shape [prompts, pool size], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite value")
    return arr


def _sorted_with_ties(proxy: np.ndarray, value: np.ndarray) -> np.ndarray:
    """`value` reordered by ascending proxy, each tie group replaced by its mean.

    Ties are broken uniformly at random in expectation: among tied proxy scores each sample is
    equally likely to be kept, so the group's mean value is the exact expectation.
    """
    order = np.argsort(proxy, axis=1, kind="stable")
    p_sorted = np.take_along_axis(proxy, order, axis=1)
    v_sorted = np.take_along_axis(value, order, axis=1)
    tied_rows = np.flatnonzero(np.any(np.diff(p_sorted, axis=1) == 0, axis=1))
    for r in tied_rows:
        _, start, counts = np.unique(p_sorted[r], return_index=True, return_counts=True)
        for s, c in zip(start, counts):
            if c > 1:
                v_sorted[r, s:s + c] = v_sorted[r, s:s + c].mean()
    return v_sorted


def expected_best_of_n(proxy_scores, values, n: int) -> np.ndarray:
    """Per prompt, E[value of the best-of-n sample by proxy], estimated without bias from the pool.

    proxy_scores and values have shape [P prompts, K samples] with K >= n. Returns shape [P].
    """
    proxy = _matrix(proxy_scores, "proxy_scores")
    vals = _matrix(values, "values")
    if proxy.shape != vals.shape:
        raise ValueError(f"proxy_scores and values differ in shape: {proxy.shape} vs {vals.shape}")
    w = best_of_n_weights(n, proxy.shape[1])
    return _sorted_with_ties(proxy, vals) @ w


def best_of_n_curve(proxy_scores, gold_scores, ns: Sequence[int],
                    extras: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Expected gold and proxy reward of best-of-n selection for each n, against KL and d.

    `kl` is Gao et al.'s analytic log n - (n - 1) / n (an upper bound on the true KL, see
    `kl_best_of_n`), the x-axis their fits use. Columns: n, kl, d = sqrt(kl), gold_mean, gold_sem (standard error over prompts), proxy_mean,
    plus `<name>_mean` for every extra [P, K] array in `extras` (e.g. response length).
    """
    proxy = _matrix(proxy_scores, "proxy_scores")
    gold = _matrix(gold_scores, "gold_scores")
    if proxy.shape != gold.shape:
        raise ValueError(f"proxy_scores and gold_scores differ in shape: {proxy.shape} vs {gold.shape}")
    if isinstance(ns, (str, bytes)) or not hasattr(ns, "__iter__"):
        raise TypeError(f"ns must be a list of integers (the n of each best-of-n), got "
                        f"{type(ns).__name__} {ns!r}: for one n pass [n]")
    if extras is not None and not isinstance(extras, Mapping):
        raise TypeError(f"extras must be a dict name -> [prompts, pool size] array, got {type(extras).__name__}")
    ns_arr = _check_n(list(ns), "ns")
    if ns_arr.ndim != 1 or ns_arr.size == 0:
        raise ValueError("ns must be a non-empty list of integers")
    if ns_arr.max() > proxy.shape[1]:
        raise ValueError(f"n = {int(ns_arr.max())} exceeds the pool size K = {proxy.shape[1]}")
    extra = {name: _matrix(v, f"extras[{name!r}]") for name, v in (extras or {}).items()}
    for name, v in extra.items():
        if v.shape != proxy.shape:
            raise ValueError(f"extras[{name!r}] has shape {v.shape}, expected {proxy.shape}")
    sorted_gold = _sorted_with_ties(proxy, gold)
    sorted_proxy = np.sort(proxy, axis=1)
    sorted_extra = {name: _sorted_with_ties(proxy, v) for name, v in extra.items()}
    rows = []
    for n in ns_arr:
        w = best_of_n_weights(int(n), proxy.shape[1])
        g = sorted_gold @ w
        kl = kl_best_of_n(int(n))
        row = {"n": int(n), "kl": kl, "d": float(np.sqrt(kl)), "gold_mean": float(g.mean()),
               "gold_sem": float(g.std(ddof=1) / np.sqrt(g.size)) if g.size > 1 else float("nan"),
               "proxy_mean": float((sorted_proxy @ w).mean())}
        for name, v in sorted_extra.items():
            row[f"{name}_mean"] = float((v @ w).mean())
        rows.append(row)
    return pd.DataFrame(rows)


def fit_gao_bon(d, gold, gold0: float | None = None) -> tuple[float, float]:
    """Least-squares fit of gold - gold0 = d * (alpha - beta * d) (Gao et al.'s best-of-n form).

    gold0 is the gold reward of the base policy (n = 1, d = 0); by default it is read from the
    points with d == 0. The model is linear in (alpha, beta), so ordinary least squares
    (scipy.linalg.lstsq) gives the exact optimum. Returns (alpha, beta).
    """
    d = as_numbers(d, "d", ndim=None, allow_empty=True, finite=False)
    y = as_numbers(gold, "gold", ndim=None, allow_empty=True, finite=False)
    if gold0 is not None:
        gold0 = as_number(gold0, "gold0")
    if d.ndim != 1 or d.shape != y.shape:
        raise ValueError(f"d and gold must be 1-D of equal length, got {d.shape} and {y.shape}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(y))):
        raise ValueError("d and gold must be finite")
    if np.any(d < 0):
        raise ValueError("d = sqrt(KL) cannot be negative")
    if gold0 is None:
        at_zero = d == 0
        if not at_zero.any():
            raise ValueError("no point with d == 0 (n = 1): pass gold0, the base policy's gold reward")
        gold0 = float(y[at_zero].mean())
    if np.count_nonzero(d > 0) < 2:
        raise ValueError("need at least 2 points with d > 0 to fit alpha and beta")
    design = np.column_stack([d, -d ** 2])
    (alpha, beta), *_ = lstsq(design, y - gold0)
    return float(alpha), float(beta)


def gao_bon_curve(d, alpha: float, beta: float, gold0: float = 0.0):
    """gold0 + d * (alpha - beta * d), the fitted best-of-n gold reward."""
    as_numbers(d, "d", ndim=None, allow_empty=True)
    for name, value in (("alpha", alpha), ("beta", beta), ("gold0", gold0)):
        as_number(value, name)
    d = np.asarray(d, dtype=float)
    return gold0 + d * (alpha - beta * d)


def fit_gao_rl(d, gold, gold0: float) -> tuple[float, float]:
    """Least-squares fit of gold - gold0 = d * (alpha - beta * log d) (Gao et al.'s RL form).

    Points with d == 0 carry no information about alpha and beta (the form is 0 there) and are
    left out; gold0 is the start policy's gold reward. Linear in (alpha, beta). Returns (alpha, beta).
    """
    d = np.asarray(d, dtype=float)
    y = np.asarray(gold, dtype=float)
    if d.ndim != 1 or d.shape != y.shape:
        raise ValueError(f"d and gold must be 1-D of equal length, got {d.shape} and {y.shape}")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(y))):
        raise ValueError("d and gold must be finite")
    if np.any(d < 0):
        raise ValueError("d = sqrt(KL) cannot be negative")
    keep = d > 0
    if np.count_nonzero(keep) < 2:
        raise ValueError("need at least 2 points with d > 0 to fit alpha and beta")
    design = np.column_stack([d[keep], -d[keep] * np.log(d[keep])])
    (alpha, beta), *_ = lstsq(design, y[keep] - float(gold0))
    return float(alpha), float(beta)


def gao_rl_curve(d, alpha: float, beta: float, gold0: float = 0.0):
    """gold0 + d * (alpha - beta * log d), the fitted RL gold reward (gold0 at d = 0)."""
    d = np.asarray(d, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = gold0 + d * (alpha - beta * np.log(d))
    return np.where(d > 0, out, gold0)


def peak_d_rl(alpha: float, beta: float) -> float:
    """Where d * (alpha - beta log d) peaks: exp(alpha / beta - 1); inf when beta <= 0 (no peak)."""
    if beta <= 0:
        return float("inf")
    return float(np.exp(alpha / beta - 1.0))


def peak_d(alpha: float, beta: float) -> float:
    """Where d * (alpha - beta d) peaks: alpha / (2 beta); inf when beta <= 0 (no peak)."""
    as_number(alpha, "alpha")
    as_number(beta, "beta")
    if beta <= 0:
        return float("inf")
    return float(alpha / (2.0 * beta))


def rejection_subsample(feature, keep_base: float, k: int, seed: int = 0) -> np.ndarray:
    """Indices [P, k] of a sub-pool drawn from another base policy, by rejection sampling.

    Each candidate of a pool sampled from policy pi is kept with probability
    keep_base ** feature (feature >= 0, e.g. filler sentences), so the kept candidates are a
    sample from pi'(y) proportional to pi(y) * keep_base ** feature(y): a policy whose large
    feature values are rare (the tails). The first `k` kept candidates of each prompt are
    returned (in pool order, which is random); a prompt keeping fewer than `k` is an error.
    """
    feat = _matrix(feature, "feature")
    if np.any(feat < 0):
        raise ValueError("feature must be >= 0 (keep probability keep_base ** feature)")
    as_number(keep_base, "keep_base")
    if not 0.0 < keep_base <= 1.0:
        raise ValueError(f"keep_base must be in (0, 1], got {keep_base}")
    k = int(_check_n(k, "k"))
    rng = np.random.default_rng(seed)
    keep = rng.random(feat.shape) < keep_base ** feat
    counts = keep.sum(axis=1)
    if counts.min() < k:
        raise ValueError(f"prompt {int(np.argmin(counts))} kept only {int(counts.min())} of "
                         f"{feat.shape[1]} candidates, fewer than k={k}: use bigger pools or a "
                         "larger keep_base")
    return np.stack([np.flatnonzero(row)[:k] for row in keep])
