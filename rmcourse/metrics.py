"""Pairwise metrics for reward models: accuracy (ties wrong), per-section accuracy, batched scoring.

Accuracy is the share of pairs where the reward model scores the chosen response strictly above the
rejected one. A tie counts as wrong, as RewardBench (allenai/reward-bench, rewardbench/utils.py) and
TRL's RewardTrainer do: a model that gives every response the same reward must score 0, not 50%.

Scoring uses the model's own window (`RewardModel.max_length`, saved with the checkpoint) unless
told otherwise, and an explicit policy for a response longer than it: `overflow="error"`
(default), "truncate" (cut from the right, as RewardBench's scripts do) or "drop"
(`score_pairs_report` only, which returns the indices of the rows it kept).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from rmcourse.validation import as_float_array

# RewardBench's section names first, then anything else alphabetically.
_SECTION_ORDER = ("chat", "chat_hard", "safety", "reasoning", "other")


@dataclass(frozen=True)
class AccuracyReport:
    """Pairwise accuracy with its counts: `accuracy = n_correct / n`; ties are counted as wrong."""

    accuracy: float
    n: int
    n_correct: int
    n_ties: int

    def __str__(self) -> str:
        return (f"accuracy {self.accuracy:.3f} ({self.n_correct}/{self.n} pairs, "
                f"{self.n_ties} ties counted as wrong)")


def as_reward_array(values: Any, name: str = "rewards") -> np.ndarray:
    """A 1-D float64 NumPy copy of torch/NumPy/list rewards; refuses NaN/inf, strings, booleans,
    None and other shapes with a message naming `name` (see `rmcourse.validation`)."""
    return as_float_array(values, name, allow_empty=True)


def _paired(chosen_rewards: Any, rejected_rewards: Any) -> tuple[np.ndarray, np.ndarray]:
    chosen = as_reward_array(chosen_rewards, "chosen_rewards")
    rejected = as_reward_array(rejected_rewards, "rejected_rewards")
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen_rewards has {chosen.size} values but rejected_rewards has "
                         f"{rejected.size}: they must be paired one to one")
    if chosen.size == 0:
        raise ValueError("no pairs: chosen_rewards and rejected_rewards are empty")
    return chosen, rejected


def pairwise_accuracy(chosen_rewards: Any, rejected_rewards: Any) -> AccuracyReport:
    """Share of pairs with reward(chosen) > reward(rejected); exact ties count as wrong.

    Accepts torch tensors, NumPy arrays or lists, one reward per pair.
    """
    chosen, rejected = _paired(chosen_rewards, rejected_rewards)
    n_correct = int(np.sum(chosen > rejected))
    n_ties = int(np.sum(chosen == rejected))
    return AccuracyReport(accuracy=n_correct / chosen.size, n=int(chosen.size),
                          n_correct=n_correct, n_ties=n_ties)


def _sections_of(ds_or_sections: Any, by: str = "section") -> list[str]:
    """The ``by`` label of every pair (its section by default), from a Dataset/DataFrame column or
    a plain sequence of labels."""
    if not isinstance(by, str) or not by:
        raise TypeError(f"by must be a column name (a non-empty str), got {by!r}")
    if isinstance(ds_or_sections, (str, bytes)):
        raise TypeError(f"ds_or_sections must be a dataset with a {by!r} column or a list of "
                        f"{by} labels, got a single string")
    column_names = getattr(ds_or_sections, "column_names", None)
    if column_names is None and isinstance(ds_or_sections, pd.DataFrame):
        column_names = list(ds_or_sections.columns)
    if column_names is not None:
        if by not in column_names:
            raise ValueError(f"missing column {by!r} (needed to split accuracy by {by})")
        sections = list(ds_or_sections[by])
    elif isinstance(ds_or_sections, (list, tuple, np.ndarray, pd.Series)):
        sections = list(ds_or_sections)
    else:
        raise TypeError("ds_or_sections must be a datasets.Dataset/pandas.DataFrame with a "
                        f"{by!r} column or a list of {by} labels, got "
                        f"{type(ds_or_sections).__name__}")
    for i, section in enumerate(sections):
        if not isinstance(section, str) or not section:
            raise ValueError(f"empty or non-string {by} in row {i}: {section!r}")
    if "all" in sections:
        raise ValueError(f"'all' is reserved for the overall row; rename that {by}")
    return sections


def per_section_accuracy(ds_or_sections: Any, chosen_rewards: Any,
                         rejected_rewards: Any, by: str = "section") -> pd.DataFrame:
    """Accuracy per section (columns section, n, accuracy, n_ties) plus a last row "all".

    ``by`` groups by another column instead, e.g. ``by="novelty"`` for the preference world's
    in-distribution vs novel test pairs; the first column is then named ``by``. For two columns
    at once, pass labels such as ``[f"{s}/{v}" for s, v in zip(ds["section"], ds["novelty"])]``.

    "all" pools every pair (a micro-average). RewardBench's headline score is different: the
    unweighted mean of its four section scores; compute that from this table when you need it.
    """
    chosen, rejected = _paired(chosen_rewards, rejected_rewards)
    sections = _sections_of(ds_or_sections, by)
    if len(sections) != chosen.size:
        raise ValueError(f"{len(sections)} {by} labels but {chosen.size} reward pairs: "
                         "score the same rows you label")
    labels = np.asarray(sections, dtype=object)
    known = [s for s in _SECTION_ORDER if s in set(sections)]
    order = known + sorted(set(sections) - set(known))
    rows = []
    for section in order:
        mask = labels == section
        report = pairwise_accuracy(chosen[mask], rejected[mask])
        rows.append({by: section, "n": report.n, "accuracy": report.accuracy,
                     "n_ties": report.n_ties})
    overall = pairwise_accuracy(chosen, rejected)
    rows.append({by: "all", "n": overall.n, "accuracy": overall.accuracy,
                 "n_ties": overall.n_ties})
    return pd.DataFrame(rows, columns=[by, "n", "accuracy", "n_ties"])


def pair_collator_for(model: Any, max_length: int | None = None):
    """A `PairCollator` padded the way `model` needs: right for encoders (they read position 0),
    the tokenizer's side for decoders (their pooling handles both sides)."""
    from rmcourse.tokenization import PairCollator

    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise TypeError("model must be an rmcourse RewardModel (it carries its tokenizer); got "
                        f"{type(model).__name__} without a .tokenizer")
    side = None if getattr(model, "is_decoder", False) else "right"
    return PairCollator(tokenizer, max_length, padding_side=side)


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise ValueError("model has no parameters") from None


@torch.no_grad()
def score_tokenized(model: torch.nn.Module, tokenized: Any, batch_size: int = 32,
                    max_length: int | None = None,
                    progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards of already-tokenized pairs (output of `tokenize_pairs`), in row order.

    Eval mode (restored afterwards), no grad, bf16 autocast on CUDA, rows of similar length
    batched together, and ONE forward per batch over the chosen and rejected rows stacked.
    Returns float32 CPU tensors (chosen_rewards, rejected_rewards).
    """
    from rmcourse.device import autocast
    from rmcourse.tokenization import length_grouped_batches

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    names = getattr(tokenized, "column_names", None)
    if names is None or "chosen_input_ids" not in names:
        raise ValueError("missing column 'chosen_input_ids': tokenize with "
                         "rmcourse.tokenization.tokenize_pairs first (or call score_pairs)")
    n = len(tokenized)
    if n == 0:
        raise ValueError("no pairs to score: the dataset is empty")
    keep = [c for c in names if c.endswith(("_input_ids", "_token_type_ids"))]
    rows = tokenized.select_columns(keep).to_list()
    lengths = (list(tokenized["length"]) if "length" in names else
               [max(len(r["chosen_input_ids"]), len(r["rejected_input_ids"])) for r in rows])
    collate = pair_collator_for(model, max_length)
    device = _model_device(model)
    chosen = torch.empty(n, dtype=torch.float32)
    rejected = torch.empty(n, dtype=torch.float32)
    batches = length_grouped_batches(lengths, batch_size, shuffle=False)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="scoring", unit="batch", leave=False)
    was_training = model.training
    model.eval()
    try:
        for indices in batches:
            batch = {k: v.to(device) for k, v in collate([rows[i] for i in indices]).items()
                     if k != "margin"}
            with autocast(device):
                rewards = model(**batch).float().cpu()
            where = torch.as_tensor(indices)
            chosen[where] = rewards[: len(indices)]
            rejected[where] = rewards[len(indices):]
    finally:
        model.train(was_training)
    return chosen, rejected


@dataclass(frozen=True)
class ScoredPairs:
    """Rewards of the pairs `score_pairs_report` kept, with which rows they are and what the
    window did: `chosen[i]`, `rejected[i]` belong to row `kept[i]` of the dataset."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    kept: np.ndarray
    report: Any  # rmcourse.tokenization.TruncationReport
    max_length: int


def _model_tokenizer(model: Any) -> Any:
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise TypeError("model must be an rmcourse RewardModel (it carries its tokenizer); got "
                        f"{type(model).__name__} without a .tokenizer")
    return tokenizer


def _window_of(model: Any, max_length: Any) -> int:
    """The model's own saved window unless the caller asks for another (checked by the model)."""
    if max_length is None:
        own = getattr(model, "max_length", None)
        if not isinstance(own, int):
            raise TypeError("max_length=None uses the model's own max_length, but this model has "
                            "none; pass max_length")
        return own
    window = getattr(model, "_window", None)
    return window(max_length) if callable(window) else max_length


def score_pairs_report(model: torch.nn.Module, ds: Any, batch_size: int = 32,
                       max_length: int | None = None, progress: bool = False,
                       overflow: str = "error") -> ScoredPairs:
    """Score every pair of `ds` that the window allows, and say which rows those are.

    `max_length` defaults to the model's own (`RewardModel.max_length`, saved with the
    checkpoint). `overflow` decides what happens to a pair whose response alone is longer than
    the window: "error" (ValueError naming the count), "truncate" (kept, the response cut from
    the right as RewardBench's scripts do) or "drop" (left out; `kept` lists the rows scored).
    The `report` counts prompts cut, responses cut and pairs dropped.
    """
    from rmcourse.tokenization import OVERFLOW_POLICIES, tokenize_pairs

    tokenizer = _model_tokenizer(model)
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    if ds is None or len(ds) == 0:
        raise ValueError("no pairs to score: the dataset is empty")
    window = _window_of(model, max_length)
    import datasets

    if isinstance(ds, list):
        ds = datasets.Dataset.from_list(ds)
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"ds must be a datasets.Dataset or a list of dicts, got {type(ds).__name__}")
    # Only the texts travel, plus each row's index, so the scores can be matched back to `ds`.
    columns = {c: list(ds[c]) for c in ("prompt", "chosen", "rejected") if c in ds.column_names}
    columns["_rmcourse_row"] = list(range(len(ds)))
    indexed = datasets.Dataset.from_dict(columns)
    tokenized, report = tokenize_pairs(indexed, tokenizer, window,
                                       overflow="drop" if overflow == "error" else overflow)
    if overflow == "error" and report.n_dropped:
        raise ValueError(f"{report.n_dropped} of {report.n_total} pairs have a response longer "
                         f"than max_length={window} tokens; raise max_length, filter them out "
                         "first, or choose overflow='truncate' or 'drop' (scoring never skips "
                         "rows silently)")
    if len(tokenized) == 0:
        raise ValueError(f"every one of the {report.n_total} pairs has a response longer than "
                         f"max_length={window} tokens: nothing left to score")
    kept = np.asarray(tokenized["_rmcourse_row"], dtype=np.int64)
    chosen, rejected = score_tokenized(model, tokenized, batch_size=batch_size,
                                       max_length=window, progress=progress)
    return ScoredPairs(chosen=chosen, rejected=rejected, kept=kept, report=report,
                       max_length=window)


def score_pairs(model: torch.nn.Module, ds: Any, batch_size: int = 32,
                max_length: int | None = None, progress: bool = False,
                overflow: str = "error") -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen_rewards, rejected_rewards) of every pair in `ds`, float32 CPU tensors in row order.

    Texts are tokenized with the course's truncation policy (prompt cut from the left) in the
    model's own window (`max_length=None`: `RewardModel.max_length`, the one it was saved with).
    A pair whose response alone does not fit raises (`overflow="error"`) or is cut to fit
    (`overflow="truncate"`); it is never skipped, so the rewards always line up with the rows of
    `ds` (e.g. for `per_section_accuracy`). To leave such pairs out, use `score_pairs_report`
    with `overflow="drop"`, which says which rows it kept.
    """
    if overflow == "drop":
        raise ValueError("score_pairs keeps every row; for overflow='drop' use "
                         "score_pairs_report, which returns the indices of the rows it kept")
    scored = score_pairs_report(model, ds, batch_size=batch_size, max_length=max_length,
                                progress=progress, overflow=overflow)
    return scored.chosen, scored.rejected
