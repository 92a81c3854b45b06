"""Ranking quality: does the reward model order K responses to one prompt the way the truth does?

Kendall's tau compares two orderings of the same items through their pairs: +1 when every pair is
ordered alike, -1 when every pair is reversed. It must be given two *scores of the same items in
the same item order*. `kendall_tau` is scipy.stats.kendalltau's tau-b, which handles ties: over the
n0 = n(n-1)/2 unordered pairs, tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2)) with C concordant and D
discordant pairs, n1 pairs tied in the first scores and n2 in the second (chapter 05's exercise
computes it by counting).

The seed note computed `kendalltau(true_ranking, np.argsort(scores)[::-1])`: argsort returns the
*indices* of the items from best to worst, an item order, not each item's rank, so tau compares
unrelated quantities (`seed_kendall_tau` keeps the bug for the pitfall demo). It also scored one
text at a time; `ranking_kendall_taus` scores every (prompt, response) of every prompt in batches.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.stats import kendalltau

from rmcourse.bootstrap import as_numbers
from rmcourse.validation import as_count

__all__ = ["kendall_tau", "seed_kendall_tau", "score_responses", "ranking_kendall_taus"]


def _scores(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    # booleans are allowed: a 0/1 truth ("acceptable or not") is a valid, tied, ranking
    arr = as_numbers(values, name, ndim=None, allow_bool=True, allow_empty=True, finite=False)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 items to rank, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite value at position {int(np.flatnonzero(~np.isfinite(arr))[0])}")
    return arr


def kendall_tau(true_scores, predicted_scores) -> float:
    """Kendall's tau-b between true and predicted SCORES of the same items (same item order).

    Both must be "higher is better" (for ranks where 1 = best, pass `-ranks`). Undefined when
    either side gives every item the same score: that raises ValueError instead of returning NaN.
    """
    t = _scores(true_scores, "true_scores")
    p = _scores(predicted_scores, "predicted_scores")
    if t.size != p.size:
        raise ValueError(f"true_scores and predicted_scores differ in length: {t.size} vs {p.size}")
    for arr, name in ((t, "true_scores"), (p, "predicted_scores")):
        if np.all(arr == arr[0]):
            raise ValueError(f"Kendall's tau is undefined: all {name} are equal")
    return float(kendalltau(t, p).statistic)


def seed_kendall_tau(true_ranking, predicted_scores) -> float:
    """The seed note's version, bug included: argsort indices compared with ranks. Do not use."""
    predicted_ranking = np.argsort(np.asarray(predicted_scores, dtype=float))[::-1]
    return float(kendalltau(np.asarray(true_ranking), predicted_ranking).statistic)


def _score_fn(model_or_score_fn: Any, batch_size: int) -> Callable[[list[str], list[str]], np.ndarray]:
    if hasattr(model_or_score_fn, "score"):
        return lambda prompts, responses: model_or_score_fn.score(prompts, responses, batch_size=batch_size)
    if callable(model_or_score_fn):
        return model_or_score_fn
    raise TypeError("model_or_score_fn must be a RewardModel (with .score) or a callable "
                    f"score_fn(prompts, responses), got {type(model_or_score_fn).__name__}")


def score_responses(model_or_score_fn: Any, prompts: Sequence[str],
                    responses: Sequence[Sequence[str]], batch_size: int = 64) -> list[np.ndarray]:
    """Rewards for every response of every prompt: flatten, score in batches, regroup.

    `responses[i]` is the list of responses to `prompts[i]`. A model's `.score` is called once
    with `batch_size`; a plain callable `score_fn(prompts, responses)` is called per chunk of
    `batch_size` flattened pairs. Returns one float array per prompt.
    """
    as_count(batch_size, "batch_size", low=-2 ** 62)  # TypeError for a float, a str, a bool
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    _score_fn(model_or_score_fn, batch_size)  # a model or a callable, before any text is read
    for name, value in (("prompts", prompts), ("responses", responses)):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a list (one entry per prompt), got a single string")
        if value is None or isinstance(value, Mapping) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list (one entry per prompt), got {type(value).__name__}")
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} response lists")
    flat_p: list[str] = []
    flat_r: list[str] = []
    sizes: list[int] = []
    for i, (prompt, group) in enumerate(zip(prompts, responses)):
        if not isinstance(prompt, str):
            raise TypeError(f"prompt in row {i} must be a string, got {type(prompt).__name__}")
        if isinstance(group, str) or not hasattr(group, "__len__") or len(group) == 0:
            raise ValueError(f"responses in row {i} must be a non-empty list of strings")
        for j, text in enumerate(group):
            if not isinstance(text, str) or not text:
                raise ValueError(f"empty or non-string response {j} in row {i}")
        flat_p += [prompt] * len(group)
        flat_r += list(group)
        sizes.append(len(group))
    if hasattr(model_or_score_fn, "score"):
        flat = model_or_score_fn.score(flat_p, flat_r, batch_size=batch_size)
        flat = _scorer_output(flat.detach().cpu().float().numpy() if hasattr(flat, "detach") else flat)
    else:
        fn = _score_fn(model_or_score_fn, batch_size)
        chunks = []
        for start in range(0, len(flat_p), batch_size):
            out = fn(flat_p[start:start + batch_size], flat_r[start:start + batch_size])
            out = out.detach().cpu().float().numpy() if hasattr(out, "detach") else out
            chunks.append(_scorer_output(out).reshape(-1))
        flat = np.concatenate(chunks) if chunks else np.zeros(0)
    if flat.shape != (len(flat_r),):
        raise ValueError(f"the scorer returned {flat.size} scores for {len(flat_r)} responses")
    bad = np.flatnonzero(~np.isfinite(flat))
    if bad.size:
        raise ValueError(f"the scorer returned a non-finite reward ({flat[bad[0]]}) for response "
                         f"{int(bad[0])} of the flattened batch: check the model or the score_fn")
    bounds = np.cumsum([0] + sizes)
    return [flat[bounds[k]:bounds[k + 1]] for k in range(len(sizes))]


def _scorer_output(out: Any) -> np.ndarray:
    return as_numbers(out, "the scorer's output", ndim=None, allow_empty=True, finite=False)


def _column(rows: Any, key: str) -> list:
    if isinstance(rows, Mapping):
        if key not in rows:
            raise ValueError(f"missing column {key!r}")
        return list(rows[key])
    names = getattr(rows, "column_names", None)
    if names is not None:  # datasets.Dataset
        if key not in names:
            raise ValueError(f"missing column {key!r} (columns: {names})")
        return list(rows[key])
    if isinstance(rows, (str, bytes)) or rows is None or not hasattr(rows, "__iter__"):
        raise TypeError("rankings_ds must be a datasets.Dataset, a dict of columns or a list of row "
                        f"dicts, got {type(rows).__name__}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} of rankings_ds must be a dict, got {type(row).__name__}")
        if key not in row:
            raise ValueError(f"missing column {key!r} in row {i}")
        out.append(row[key])
    return out


def ranking_kendall_taus(model_or_score_fn: Any, rankings_ds: Any, batch_size: int = 64,
                         prompt_key: str = "prompt", responses_key: str = "responses",
                         truth_key: str = "gold", higher_is_better: bool = True,
                         return_scores: bool = False):
    """Kendall's tau per prompt between the truth and the model's rewards on K responses.

    `rankings_ds` is a datasets.Dataset, a dict of columns or a list of rows with a prompt, a
    list of responses and, per response, a truth value in `truth_key` (scores, higher better; for
    ranks where 1 = best pass `higher_is_better=False`). Scoring is batched across prompts.
    Returns the taus, or (taus, per-prompt reward arrays) with `return_scores=True`.
    """
    prompts = _column(rankings_ds, prompt_key)
    responses = _column(rankings_ds, responses_key)
    truths = _column(rankings_ds, truth_key)
    if not prompts:
        raise ValueError("rankings_ds is empty")
    scores = score_responses(model_or_score_fn, prompts, responses, batch_size=batch_size)
    taus = []
    for i, (truth, pred) in enumerate(zip(truths, scores)):
        if isinstance(truth, (str, bytes)) or truth is None or np.ndim(truth) != 1:
            raise TypeError(f"{truth_key!r} in row {i} must be a list of numbers (one per response), "
                            f"got {type(truth).__name__} {truth!r}"[:200])
        truth = as_numbers(truth, f"{truth_key!r} in row {i}", allow_bool=True)
        if truth.shape != pred.shape:
            raise ValueError(f"row {i}: {truth.size} truth values for {pred.size} responses")
        taus.append(kendall_tau(truth if higher_is_better else -truth, pred))
    taus = np.asarray(taus)
    return (taus, scores) if return_scores else taus
