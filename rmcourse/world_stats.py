"""Measuring the preference world: the spurious length feature, and how new the test split is.

* ``length_gold_correlation`` / ``gold_by_padding``: how filler (padding) and word counts relate to
  the gold reward in a pair, ranking or pool dataset (the length shortcut of chapters 05 and 06).
* ``prompt_core``: a prompt without its greeting prefix and suffix (what decides its split).
* ``verbatim_overlap``: per section and novelty, the share of response sentences and of prompt
  cores in one dataset that occur verbatim in another (e.g. test against train). A test split made
  of sentences the model has already seen measures memorisation, not generalisation.

All of them are re-exported by ``rmcourse.world``.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from rmcourse.world_reasoning import MATH_PREFIXES, MATH_SUFFIXES
from rmcourse.world_text import CHAT_PREFIXES, CHAT_SUFFIXES, SAFETY_PREFIXES, SAFETY_SUFFIXES

__all__ = ["length_gold_correlation", "gold_by_padding", "split_sentences", "prompt_core", "verbatim_overlap"]

_SECTION_ORDER = ("chat", "chat_hard", "safety", "reasoning")
_NOVELTY_ORDER = ("in-distribution", "novel")


def _check_dataset(ds: Any) -> set[str]:
    cols = set(getattr(ds, "column_names", None) or [])
    if not cols or not hasattr(ds, "with_format"):
        raise TypeError(f"expected a datasets.Dataset from PreferenceWorld, got {type(ds).__name__}")
    return cols


def _flatten(ds: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(padding, words, gold) of every response in a pair, ranking or pool dataset."""
    import pyarrow.compute as pc

    cols = _check_dataset(ds)
    table = ds.with_format("arrow")[:]  # Arrow, with any select()/shuffle() applied; no Python loop

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy()

    def flat(name: str) -> np.ndarray:
        return pc.list_flatten(table.column(name)).to_numpy()

    if {"chosen_padding", "rejected_padding", "chosen_gold", "rejected_gold", "chosen_words", "rejected_words"} <= cols:
        pad = np.concatenate([col("chosen_padding"), col("rejected_padding")])
        words = np.concatenate([col("chosen_words"), col("rejected_words")])
        gold = np.concatenate([col("chosen_gold"), col("rejected_gold")])
    elif {"padding", "words", "gold"} <= cols:
        pad, words, gold = flat("padding"), flat("words"), flat("gold")
    else:
        raise ValueError("dataset needs chosen_/rejected_ padding, words and gold columns (pairs) "
                         f"or padding, words and gold columns (rankings, pools); got {sorted(cols)}")
    return pad.astype(float), words.astype(float), gold.astype(float)


def length_gold_correlation(ds: Any, by: str = "padding", min_padding: int = 0) -> float:
    """Pearson correlation between a length measure and gold over every response in ``ds``.

    ``by`` is "padding" (filler sentences) or "words" (whitespace words of the response).
    ``min_padding`` keeps only responses with at least that much padding: in candidate pools
    ``min_padding=3`` looks at the tail, where padding and gold are negatively correlated.
    """
    if by not in ("padding", "words"):
        raise ValueError(f"unknown length measure {by!r} (expected 'padding' or 'words')")
    if isinstance(min_padding, bool) or not isinstance(min_padding, (int, np.integer)):
        raise TypeError(f"min_padding must be an int, got {type(min_padding).__name__}")
    if min_padding < 0:
        raise ValueError(f"min_padding must be >= 0, got {min_padding}")
    pad, words, gold = _flatten(ds)
    keep = pad >= min_padding
    x, y = (pad if by == "padding" else words)[keep], gold[keep]
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        raise ValueError(f"correlation undefined: {x.size} response(s) with padding >= {min_padding}, "
                         "or a constant column")
    return float(np.corrcoef(x, y)[0, 1])


def gold_by_padding(ds: Any) -> "pandas.DataFrame":  # noqa: F821
    """Mean gold reward, mean words and count per padding level (for plots and checks)."""
    import pandas as pd

    pad, words, gold = _flatten(ds)
    frame = pd.DataFrame({"padding": pad.astype(int), "words": words, "gold": gold})
    out = frame.groupby("padding").agg(mean_gold=("gold", "mean"), mean_words=("words", "mean"),
                                       n=("gold", "size"))
    return out.reset_index()


# ---------------------------------------------------------------------------------------------
# How new is the test split?
# ---------------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# longest first, so "Hi, hope you're well." is stripped whole and not as "Hi"
_PREFIXES = sorted({p for p in CHAT_PREFIXES + SAFETY_PREFIXES + MATH_PREFIXES if p}, key=len, reverse=True)
_SUFFIXES = sorted({s for s in CHAT_SUFFIXES + SAFETY_SUFFIXES + MATH_SUFFIXES if s}, key=len, reverse=True)


def split_sentences(text: str) -> list[str]:
    """The world's sentences: split after . ! or ? followed by whitespace ("1.8" stays whole)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def prompt_core(prompt: str) -> str:
    """A world prompt without its greeting prefix and style suffix: the question itself.

    "Hi! How do I boil an egg? Thanks!" -> "How do I boil an egg?". The split of a prompt is a
    hash of this core, so no test core is ever a train core.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    core = prompt.strip()
    for prefix in _PREFIXES:
        if core.startswith(prefix + " "):
            core = core[len(prefix) + 1:]
            break
    for suffix in _SUFFIXES:
        if core.endswith(" " + suffix):
            core = core[: -len(suffix) - 1]
            break
    return core


def _responses(ds: Any, cols: set[str]) -> list[list[str]]:
    if {"chosen", "rejected"} <= cols:
        return [[c, r] for c, r in zip(ds["chosen"], ds["rejected"])]
    if "responses" in cols:
        return list(ds["responses"])
    raise ValueError(f"dataset needs chosen/rejected columns (pairs) or a responses column; got {sorted(cols)}")


def verbatim_overlap(ds: Any, reference: Any) -> "pandas.DataFrame":  # noqa: F821
    """How much of ``ds`` occurs word for word in ``reference`` (e.g. test pairs against train pairs).

    One row per (section, novelty) present in ``ds``, then an "all" row. Columns: section, novelty,
    n (rows), sentences (response sentences), sentence_overlap (share of those sentences that occur
    verbatim among ``reference``'s response sentences), prompt_core_overlap (share of rows whose
    ``prompt_core`` is also a prompt core of ``reference``).
    """
    import pandas as pd

    cols, ref_cols = _check_dataset(ds), _check_dataset(reference)
    for name, have in (("ds", cols), ("reference", ref_cols)):
        if "prompt" not in have:
            raise ValueError(f"{name} needs a 'prompt' column; got {sorted(have)}")
    seen = {s for row in _responses(reference, ref_cols) for text in row for s in split_sentences(text)}
    seen_cores = {prompt_core(p) for p in reference["prompt"]}
    sections = list(ds["section"]) if "section" in cols else ["all"] * len(ds)
    novelty = list(ds["novelty"]) if "novelty" in cols else ["in-distribution"] * len(ds)
    records = []
    for prompt, row, section, nov in zip(ds["prompt"], _responses(ds, cols), sections, novelty):
        sents = [s for text in row for s in split_sentences(text)]
        records.append({"section": section, "novelty": nov, "sentences": len(sents),
                        "seen_sentences": sum(s in seen for s in sents),
                        "core_seen": prompt_core(prompt) in seen_cores})
    frame = pd.DataFrame(records)

    def summarise(part: "pd.DataFrame", section: str, nov: str) -> dict:
        return {"section": section, "novelty": nov, "n": len(part), "sentences": int(part.sentences.sum()),
                "sentence_overlap": float(part.seen_sentences.sum() / max(1, part.sentences.sum())),
                "prompt_core_overlap": float(part.core_seen.mean())}

    order = {s: i for i, s in enumerate(_SECTION_ORDER + _NOVELTY_ORDER)}
    keys = sorted(set(zip(frame.section, frame.novelty)), key=lambda k: (order.get(k[0], 99), k[0],
                                                                           order.get(k[1], 99), k[1]))
    rows = [summarise(frame[(frame.section == s) & (frame.novelty == v)], s, v) for s, v in keys]
    rows += [summarise(frame[frame.novelty == v], "all", v) for v in _NOVELTY_ORDER if v in set(frame.novelty)]
    rows.append(summarise(frame, "all", "all"))
    return pd.DataFrame(rows, columns=["section", "novelty", "n", "sentences", "sentence_overlap",
                                       "prompt_core_overlap"])
