"""Quality filters for preference pairs, with the seed's length bug fixed (seed errata 13).

The learning document's `DataQualityController.length_filter` measures length with
``len(text.split())``. Chinese is written without spaces, so a whole Chinese answer is ONE
"word" and the document's own example (反向传播...) is thrown away as "too short". Here
`text_length(unit="auto")` counts each CJK character (Han ideographs and kana) as one unit and
the rest of the text by whitespace words; `unit="tokens"` counts what the model will see.
`seed_length_filter` keeps the buggy version for the course's pitfall demo.

Filters take one canonical row (dict with 'chosen' and 'rejected') and return True to KEEP it.
`filter_pairs` applies them in the order length -> near_duplicate -> agreement; a row failing
several is counted under the first reason only, so the counts add up to the rows dropped.
"""
from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

import datasets
import pandas as pd

UNITS: tuple[str, ...] = ("auto", "tokens", "chars", "words")
REASONS: tuple[str, ...] = ("length", "near_duplicate", "agreement")
# The seed's thresholds: responses of 10..500 "words".
SEED_MIN_LEN, SEED_MAX_LEN = 10, 500


def is_cjk(ch: str) -> bool:
    """True for Han ideographs and Japanese kana: scripts written without spaces between words.

    Hangul is left out on purpose: Korean puts spaces between words, so words count it well.
    CJK punctuation (。，) is not counted as a unit; it acts as a separator.
    """
    cp = ord(ch)
    return (
        0x3400 <= cp <= 0x4DBF  # CJK Extension A
        or 0x4E00 <= cp <= 0x9FFF  # CJK Unified Ideographs
        or 0xF900 <= cp <= 0xFAFF  # CJK Compatibility Ideographs
        or 0x20000 <= cp <= 0x2FA1F  # Extensions B.. and compatibility supplement
        or 0x3040 <= cp <= 0x30FF  # Hiragana and Katakana
    )


def is_cjk_punctuation(ch: str) -> bool:
    """True for CJK and full-width punctuation ('。', '，', '！', '：', ...): a separator, not a unit."""
    cp = ord(ch)
    return 0x3000 <= cp <= 0x303F or 0xFF00 <= cp <= 0xFF0F or 0xFF1A <= cp <= 0xFF20


def text_length(text: str, unit: str = "auto", tokenizer: Any = None) -> int:
    """Length of `text` in `unit`: "tokens" (needs `tokenizer`; no special tokens), "chars",
    "words" (whitespace split, the seed's measure) or "auto" (one per CJK character plus
    whitespace words for everything else)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; use one of {UNITS}")
    if unit == "tokens":
        if tokenizer is None:
            raise ValueError("unit='tokens' needs a tokenizer (pass tokenizer=...)")
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if unit == "chars":
        return len(text)
    if unit == "words":
        return len(text.split())
    n_cjk = 0
    rest = []
    for ch in text:
        if is_cjk(ch):
            n_cjk += 1
            rest.append(" ")  # a CJK character also ends the Latin word before it
        elif is_cjk_punctuation(ch):
            rest.append(" ")
        else:
            rest.append(ch)
    return n_cjk + len("".join(rest).split())


def _is_row(sample: Any) -> bool:
    # dicts, datasets rows and pandas rows (Series) all qualify
    return isinstance(sample, Mapping) or (hasattr(sample, "keys") and hasattr(sample, "__getitem__"))


def _texts(sample: Any) -> tuple[str, str]:
    if not _is_row(sample):
        raise TypeError(f"sample must be a dict-like row, got {type(sample).__name__}")
    for col in ("chosen", "rejected"):
        if col not in sample:
            raise ValueError(f"missing column '{col}'")
        if not isinstance(sample[col], str):
            raise TypeError(f"column '{col}' must be str, got {type(sample[col]).__name__}")
    return sample["chosen"], sample["rejected"]


def seed_length_filter(sample: Mapping[str, Any]) -> bool:
    """THE SEED'S BUG, kept for the pitfall demo: keeps a pair whose responses have 10..500
    whitespace-separated words. Chinese text has no spaces, so a long Chinese answer is 1 "word"
    and is dropped. Use `length_filter` instead."""
    chosen, rejected = _texts(sample)
    chosen_len, rejected_len = len(chosen.split()), len(rejected.split())
    if chosen_len < SEED_MIN_LEN or rejected_len < SEED_MIN_LEN:
        return False
    if chosen_len > SEED_MAX_LEN or rejected_len > SEED_MAX_LEN:
        return False
    return True


def _check_bounds(min_len: int | None, max_len: int | None) -> None:
    for name, value in (("min_len", min_len), ("max_len", max_len)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")
    if min_len is not None and max_len is not None and min_len > max_len:
        raise ValueError(f"min_len ({min_len}) > max_len ({max_len})")


def length_filter(
    sample: Mapping[str, Any],
    min_len: int | None = SEED_MIN_LEN,
    max_len: int | None = SEED_MAX_LEN,
    unit: str = "auto",
    tokenizer: Any = None,
) -> bool:
    """Keep a pair when both responses have min_len..max_len units (None = no bound)."""
    _check_bounds(min_len, max_len)
    for text in _texts(sample):
        n = text_length(text, unit=unit, tokenizer=tokenizer)
        if (min_len is not None and n < min_len) or (max_len is not None and n > max_len):
            return False
    return True


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def near_duplicate_filter(sample: Mapping[str, Any], max_similarity: float = 0.8) -> bool:
    """Keep a pair whose responses differ: difflib `SequenceMatcher.ratio()` < max_similarity.

    Two identical responses carry no preference signal. Nearly identical ones can differ in the
    one word that matters (a wrong fact, a wrong number): in the preference world this filter
    mostly drops chat_hard's subtle-detail pairs, whose gold gap is large (chapter 02, section 6).
    Audit what it drops before using it as a blind filter.
    """
    _check_fraction("max_similarity", max_similarity)
    chosen, rejected = _texts(sample)
    matcher = difflib.SequenceMatcher(None, chosen, rejected)
    # cheap upper bounds first: ratio() <= quick_ratio() <= real_quick_ratio()
    if matcher.real_quick_ratio() < max_similarity or matcher.quick_ratio() < max_similarity:
        return True
    return matcher.ratio() < max_similarity


def agreement_filter(sample: Mapping[str, Any], min_agreement: float = 0.6) -> bool:
    """Keep a pair whose annotator `agreement` (share agreeing with the label) >= min_agreement.

    `agreement` is agreement with the RELEASED label (0.2 when the released vote was the odd one
    out of five), not majority agreement (the share voting with the majority, >= 0.5 always).

    Rows without an `agreement` value (column absent, None or NaN) are kept: no evidence of
    disagreement. Unlike the seed (strict ``> 0.6`` on 'annotator_agreement'), the bound is
    inclusive, so a 3-of-5 majority (0.6) survives the default.
    """
    _check_fraction("min_agreement", min_agreement)
    if not _is_row(sample):
        raise TypeError(f"sample must be a dict-like row, got {type(sample).__name__}")
    value = sample["agreement"] if "agreement" in sample.keys() else None
    if value is None or (isinstance(value, numbers.Real) and value != value):  # None or NaN
        return True
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"column 'agreement' must be a number, got {value!r}")
    return value >= min_agreement - 1e-12  # 3/5 must pass a 0.6 threshold


@dataclass
class FilterReport:
    """How many pairs `filter_pairs` kept, and how many it dropped for each reason."""

    n_total: int
    n_kept: int
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_dropped(self) -> int:
        return self.n_total - self.n_kept

    def __getitem__(self, reason: str) -> int:
        # dict-style access, as in design.md's "report dict of counts dropped per reason"
        return self.dropped[reason]

    def as_dict(self) -> dict[str, int]:
        return {"total": self.n_total, "kept": self.n_kept, **{f"dropped_{k}": v for k, v in self.dropped.items()}}

    def to_frame(self) -> pd.DataFrame:
        rows = [("kept", self.n_kept)] + [(f"dropped: {k}", v) for k, v in self.dropped.items()]
        frame = pd.DataFrame(rows, columns=["outcome", "pairs"])
        frame["share"] = frame["pairs"] / self.n_total if self.n_total else 0.0
        return frame

    def __str__(self) -> str:
        width = max(len(k) for k in ("kept", *self.dropped)) + 10
        pct = (lambda n: f"{100 * n / self.n_total:5.1f}%") if self.n_total else (lambda n: "  n/a")
        lines = [f"FilterReport: {self.n_kept} of {self.n_total} pairs kept"]
        lines.append(f"  {'kept':<{width}}{self.n_kept:>7}  {pct(self.n_kept)}")
        for reason, n in self.dropped.items():
            lines.append(f"  {'dropped: ' + reason:<{width}}{n:>7}  {pct(n)}")
        return "\n".join(lines)


def filter_pairs(
    ds: datasets.Dataset | list,
    min_len: int | None = SEED_MIN_LEN,
    max_len: int | None = SEED_MAX_LEN,
    unit: str = "auto",
    tokenizer: Any = None,
    max_similarity: float | None = 0.8,
    min_agreement: float | None = 0.6,
) -> tuple[datasets.Dataset, FilterReport]:
    """Apply length, near-duplicate and agreement filters; return (kept Dataset, FilterReport).

    Pass None to switch a filter off (min_len=max_len=None, max_similarity=None,
    min_agreement=None). A row failing several filters is counted under the first in
    `REASONS` order.
    """
    if isinstance(ds, list):
        ds = datasets.Dataset.from_list(ds) if ds else None
        if ds is None:
            raise ValueError("no rows to filter (empty list)")
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"ds must be a datasets.Dataset or a list of dicts, got {type(ds).__name__}")
    for col in ("chosen", "rejected"):
        if col not in ds.column_names:
            raise ValueError(f"missing column '{col}' (columns: {ds.column_names})")
    # validate arguments once, up front, even if the dataset is empty
    _check_bounds(min_len, max_len)
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; use one of {UNITS}")
    if unit == "tokens" and tokenizer is None and (min_len is not None or max_len is not None):
        raise ValueError("unit='tokens' needs a tokenizer (pass tokenizer=...)")
    if max_similarity is not None:
        _check_fraction("max_similarity", max_similarity)
    if min_agreement is not None:
        _check_fraction("min_agreement", min_agreement)

    checks = []
    if min_len is not None or max_len is not None:
        checks.append(("length", lambda r: length_filter(r, min_len, max_len, unit, tokenizer)))
    if max_similarity is not None:
        checks.append(("near_duplicate", lambda r: near_duplicate_filter(r, max_similarity)))
    if min_agreement is not None and "agreement" in ds.column_names:
        checks.append(("agreement", lambda r: agreement_filter(r, min_agreement)))

    dropped = {reason: 0 for reason in REASONS}
    keep = []
    # only the columns the filters read: decoding nested extra columns row by row is slow
    needed = [c for c in ("chosen", "rejected", "agreement") if c in ds.column_names]
    for i, row in enumerate(ds.select_columns(needed).to_list()):
        try:
            failed = next((reason for reason, ok in checks if not ok(row)), None)
        except (TypeError, ValueError) as err:
            raise type(err)(f"row {i}: {err}") from None
        if failed is None:
            keep.append(i)
        else:
            dropped[failed] += 1
    report = FilterReport(n_total=len(ds), n_kept=len(keep), dropped=dropped)
    return ds.select(keep), report
