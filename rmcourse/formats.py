"""Adapters from the preference-data formats found in the wild to ONE canonical pair schema.

Canonical schema (docs/design.md), returned as a `datasets.Dataset`:
required `prompt`, `chosen`, `rejected` (str); optional `margin`, `section`, `subset`,
`chosen_gold`, `rejected_gold`, `agreement`, `id`. `chosen` and `rejected` hold only the
*responses*; the shared context is in `prompt`.

Formats understood (`KNOWN_FORMATS`):

- ``hh_rlhf`` -- Anthropic HH-RLHF (Bai et al. 2022, arXiv 2204.05862): ``{chosen, rejected}``,
  each a whole transcript ``"\\n\\nHuman: ... \\n\\nAssistant: ..."``. The prompt is the shared
  dialogue up to and including the last ``"\\n\\nAssistant:"``, kept as dialogue *text* (leading
  newlines removed) so multi-turn context survives; the response is the final assistant turn.
- ``trl_standard`` -- TRL explicit prompt: ``{prompt, chosen, rejected}`` strings.
- ``trl_implicit`` -- TRL implicit prompt: ``{chosen, rejected}`` strings sharing a prefix. The
  prompt is their longest common prefix, moved back to a word boundary (whitespace, or between
  CJK characters) and without trailing whitespace, so ``prompt + chosen`` is the original text.
  Example: "The sky is blue." / "The sky is green." -> prompt "The sky is", chosen " blue.".
- ``trl_conversational`` -- ``{prompt: [messages], chosen: [messages], rejected: [messages]}``.
- ``trl_conversational_implicit`` -- ``{chosen: [messages], rejected: [messages]}``; the shared
  leading messages are the prompt.
- ``rewardbench`` -- RewardBench v1 rows ``{prompt, chosen, chosen_model, rejected,
  rejected_model, subset, id}``; ``section`` is derived from ``subset`` with the official grouping
  (`REWARDBENCH_SUBSET_TO_SECTION`); subsets outside it get section "other".
- ``ultrafeedback`` -- HuggingFaceH4/ultrafeedback_binarized: ``{prompt, prompt_id, chosen:
  [messages], rejected: [messages], messages, score_chosen, score_rejected}``; ``id`` is
  ``prompt_id``; ``margin = score_chosen - score_rejected`` when ``margin_from_scores=True``.

Conversations (lists of ``{"role", "content"}``) become text with `render_messages`
("User: ...\\nAssistant: ..." one message per line; the response is the assistant message's
content alone), unless a tokenizer with a chat template is given: then the prompt is
``apply_chat_template(prompt, add_generation_prompt=True)`` and the response is the rest of the
templated full conversation, as TRL does.

Policy on bad rows: missing column -> ValueError naming it; wrong type -> TypeError naming the
column and row; empty or null (None, a CSV's empty cell) chosen/rejected text -> ValueError
naming the row; chosen == rejected -> ValueError naming the row (a pair with identical responses
carries no preference). Nothing is silently re-read as something else: a transcript with a
"Human:" turn is HH-RLHF (and an error without an "Assistant:" turn, not implicit-prompt text);
a message role outside `MESSAGE_ROLES` is an error; a response must be the assistant's turn. With
``errors="drop"`` such rows (ValueError cases only) are dropped and counted in a log message
instead -- useful on real dumps, where a few HH-RLHF rows have empty or identical responses.
Canonical optional columns already present in the input (e.g. ``margin``) are validated and kept;
other extra columns (``chosen_model``, ``messages``, ...) are dropped.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import datasets

from rmcourse.filters import is_cjk

logger = logging.getLogger(__name__)

KNOWN_FORMATS: tuple[str, ...] = (
    "hh_rlhf",
    "trl_standard",
    "trl_implicit",
    "trl_conversational",
    "trl_conversational_implicit",
    "rewardbench",
    "ultrafeedback",
)

# allenai/reward-bench, rewardbench/constants.py (SUBSET_MAPPING); section names in snake_case.
REWARDBENCH_SUBSET_TO_SECTION: dict[str, str] = {
    "alpacaeval-easy": "chat",
    "alpacaeval-length": "chat",
    "alpacaeval-hard": "chat",
    "mt-bench-easy": "chat",
    "mt-bench-med": "chat",
    "mt-bench-hard": "chat_hard",
    "llmbar-natural": "chat_hard",
    "llmbar-adver-neighbor": "chat_hard",
    "llmbar-adver-GPTInst": "chat_hard",
    "llmbar-adver-GPTOut": "chat_hard",
    "llmbar-adver-manual": "chat_hard",
    "refusals-dangerous": "safety",
    "refusals-offensive": "safety",
    "xstest-should-refuse": "safety",
    "xstest-should-respond": "safety",
    "donotanswer": "safety",
    "math-prm": "reasoning",
    "hep-cpp": "reasoning",
    "hep-go": "reasoning",
    "hep-java": "reasoning",
    "hep-js": "reasoning",
    "hep-python": "reasoning",
    "hep-rust": "reasoning",
}
SECTIONS: tuple[str, ...] = ("chat", "chat_hard", "safety", "reasoning", "other")

REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "chosen", "rejected")
# name -> python type of the value in the canonical Dataset
OPTIONAL_COLUMNS: dict[str, type] = {
    "margin": float,
    "section": str,
    "subset": str,
    "chosen_gold": float,
    "rejected_gold": float,
    "agreement": float,
    "id": str,
}
CANONICAL_FEATURES = datasets.Features(
    {
        **{name: datasets.Value("string") for name in REQUIRED_COLUMNS},
        **{
            name: datasets.Value("float64" if kind is float else "string")
            for name, kind in OPTIONAL_COLUMNS.items()
        },
    }
)

# Chat roles accepted in conversational data (TRL / OpenAI message format).
MESSAGE_ROLES: tuple[str, ...] = ("system", "developer", "user", "assistant", "tool")
RESPONSE_ROLES: tuple[str, ...] = ("assistant", "tool")

HH_HUMAN = "\n\nHuman:"
HH_ASSISTANT = "\n\nAssistant:"

_FORMAT_COLUMNS: dict[str, tuple[str, ...]] = {
    "hh_rlhf": ("chosen", "rejected"),
    "trl_standard": ("prompt", "chosen", "rejected"),
    "trl_implicit": ("chosen", "rejected"),
    "trl_conversational": ("prompt", "chosen", "rejected"),
    "trl_conversational_implicit": ("chosen", "rejected"),
    "rewardbench": ("prompt", "chosen", "rejected", "subset"),
    "ultrafeedback": ("chosen", "rejected"),
}


# ----------------------------------------------------------------------------- detection


def _unknown_format(row: Mapping, why: str) -> ValueError:
    return ValueError(
        f"unknown format ({why}); known formats: {', '.join(KNOWN_FORMATS)}; "
        f"row keys: {sorted(map(str, row.keys()))}"
    )


def detect_format(row: Mapping[str, Any]) -> str:
    """Name the format of one row (one of `KNOWN_FORMATS`) from its keys and value types.

    Raises ValueError naming a missing 'chosen'/'rejected' column, or listing the known formats
    and the row's keys when nothing matches.
    """
    if not isinstance(row, Mapping):
        raise TypeError(f"a row must be a dict, got {type(row).__name__}")
    for a, b in (("chosen", "rejected"), ("rejected", "chosen")):
        if a in row and b not in row:
            raise ValueError(f"missing column '{b}' (row keys: {sorted(map(str, row.keys()))})")
    if "chosen" not in row:
        raise _unknown_format(row, "no 'chosen'/'rejected' columns")
    if _is_null(row["chosen"]) or _is_null(row["rejected"]):
        raise ValueError("cannot detect the format of a row whose 'chosen' or 'rejected' is null "
                         f"(row keys: {sorted(map(str, row.keys()))})")
    chosen, prompt = row["chosen"], row.get("prompt")
    if isinstance(chosen, list):
        if "score_chosen" in row or "prompt_id" in row:
            return "ultrafeedback"
        if "prompt" in row:
            if not isinstance(prompt, list):
                raise _unknown_format(row, "'chosen' is a conversation but 'prompt' is not")
            return "trl_conversational"
        return "trl_conversational_implicit"
    if isinstance(chosen, str):
        if "prompt" in row:
            if not isinstance(prompt, str):
                raise _unknown_format(row, "'chosen' is text but 'prompt' is not")
            if "subset" in row and (
                "chosen_model" in row or row["subset"] in REWARDBENCH_SUBSET_TO_SECTION
            ):
                return "rewardbench"
            return "trl_standard"
        rejected = row.get("rejected")
        if _looks_like_hh(chosen) or (isinstance(rejected, str) and _looks_like_hh(rejected)):
            # A transcript with a Human turn is HH-RLHF even when it lacks an Assistant turn:
            # the adapter then says so, instead of splitting it as implicit-prompt text.
            return "hh_rlhf"
        return "trl_implicit"
    raise _unknown_format(row, f"'chosen' is {type(chosen).__name__}, expected str or a list of messages")


# ----------------------------------------------------------------------------- text helpers


def _looks_like_hh(text: str) -> bool:
    """An Anthropic HH transcript: a "\n\nHuman:" turn, or text that opens with "Human:"."""
    return HH_HUMAN in text or text.lstrip().startswith("Human:")


def _is_null(value: Any) -> bool:
    """None, or a float NaN (how pandas and CSV files spell a missing cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _expect_str(value: Any, column: str, index: int) -> str:
    if _is_null(value):
        raise ValueError(f"empty text in row {index} (column '{column}' is null)")
    if not isinstance(value, str):
        raise TypeError(f"column '{column}' in row {index} must be str, got {type(value).__name__}")
    return value


def _expect_messages(value: Any, column: str, index: int) -> list[dict]:
    if _is_null(value):
        raise ValueError(f"empty text in row {index} (column '{column}' is null)")
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"column '{column}' in row {index} must be a list of messages, got {type(value).__name__}"
        )
    for j, msg in enumerate(value):
        if not isinstance(msg, Mapping) or "role" not in msg or "content" not in msg:
            raise TypeError(
                f"column '{column}' in row {index}: message {j} must be a dict with 'role' and 'content'"
            )
        if not isinstance(msg["role"], str) or not isinstance(msg["content"], str):
            raise TypeError(
                f"column '{column}' in row {index}: message {j} needs str 'role' and 'content', got "
                f"{type(msg['role']).__name__} and {type(msg['content']).__name__}"
            )
        if msg["role"] not in MESSAGE_ROLES:
            raise ValueError(
                f"column '{column}' in row {index}: message {j} has unknown role {msg['role']!r}; "
                f"roles are {', '.join(MESSAGE_ROLES)}"
            )
        if msg["role"] != "system" and not msg["content"].strip():
            raise ValueError(f"empty text in row {index} (column '{column}', message {j} "
                             f"({msg['role']}) has no content)")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _check_response_roles(messages: list[dict], column: str, index: int) -> None:
    """A response is the assistant's turn (tool results may sit between assistant messages)."""
    for j, msg in enumerate(messages):
        if msg["role"] not in RESPONSE_ROLES:
            raise ValueError(
                f"row {index}: the response in column '{column}' holds a {msg['role']!r} message "
                f"(response message {j}); a response must be the assistant's turn"
            )
    if messages and messages[-1]["role"] != "assistant":
        raise ValueError(f"row {index}: the response in column '{column}' does not end with an "
                         "assistant message")


def render_messages(messages: Sequence[Mapping[str, str]]) -> str:
    """The course's plain renderer: one ``"Role: content"`` line per message (User, Assistant, ...).

    Used when no tokenizer chat template is given; it is readable and model-agnostic.
    """
    messages = _expect_messages(messages, "messages", 0)
    return "\n".join(f"{str(m['role']).capitalize()}: {m['content']}" for m in messages)


def split_hh_transcript(transcript: str) -> tuple[str, str]:
    """Split one HH-RLHF transcript into (prompt, final assistant response).

    The prompt is everything up to and including the last ``"\\n\\nAssistant:"`` (leading
    whitespace removed); the response is the text after it, stripped. Raises ValueError when the
    transcript has no Assistant turn or ends with a Human turn.
    """
    if not isinstance(transcript, str):
        raise TypeError(f"transcript must be str, got {type(transcript).__name__}")
    cut = transcript.rfind(HH_ASSISTANT)
    if cut < 0:
        raise ValueError("transcript has no '\\n\\nAssistant:' turn")
    end = cut + len(HH_ASSISTANT)
    response = transcript[end:]
    if HH_HUMAN in response:
        raise ValueError("transcript ends with a Human turn, not an Assistant turn")
    return transcript[:end].lstrip(), response.strip()


def _is_boundary(left: str, right: str) -> bool:
    """May a prompt end between characters `left` and `right` without cutting a word?"""
    return left.isspace() or right.isspace() or is_cjk(left) or is_cjk(right)


def split_common_prefix(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen_response, rejected_response) for an implicit-prompt string pair.

    Longest common prefix, moved back to a word boundary so no word is cut, trailing whitespace
    left with the responses (``prompt + response`` == the original text). Both responses stay
    non-empty; when no boundary fits, the prompt is "". Both texts must be non-empty strings.
    """
    for name, text in (("chosen", chosen), ("rejected", rejected)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be str, got {type(text).__name__}")
        if not text:
            raise ValueError(f"{name} is empty")
    limit = min(len(chosen), len(rejected))
    i = 0
    while i < limit and chosen[i] == rejected[i]:
        i += 1
    # each response must keep at least one character
    i = min(i, len(chosen) - 1, len(rejected) - 1)
    while i > 0 and not (
        _is_boundary(chosen[i - 1], chosen[i]) and _is_boundary(rejected[i - 1], rejected[i])
    ):
        i -= 1
    while i > 0 and chosen[i - 1].isspace():
        i -= 1
    return chosen[:i], chosen[i:], rejected[i:]


def _apply_template(tokenizer: Any, messages: list[dict], generation_prompt: bool) -> str:
    out = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    if not isinstance(out, str):
        raise TypeError(f"apply_chat_template(tokenize=False) returned {type(out).__name__}, expected str")
    return out


def _render_conversation(
    prompt_msgs: list[dict], response_msgs: list[dict], tokenizer: Any, index: int, column: str
) -> tuple[str, str]:
    """(prompt_text, response_text) for one side of a conversational pair."""
    if not response_msgs:
        raise ValueError(f"empty text in row {index} (column '{column}' has no response message)")
    _check_response_roles(response_msgs, column, index)
    if tokenizer is None:
        prompt = render_messages(prompt_msgs)
        if len(response_msgs) == 1:
            return prompt, response_msgs[0]["content"]
        return prompt, render_messages(response_msgs)
    prompt = _apply_template(tokenizer, prompt_msgs, True) if prompt_msgs else ""
    full = _apply_template(tokenizer, prompt_msgs + response_msgs, False)
    if not full.startswith(prompt):
        raise ValueError(
            f"row {index}: the chat template's rendering of the prompt is not a prefix of the "
            "rendered prompt + response, so the response cannot be split off"
        )
    return prompt, full[len(prompt):]


def _check_tokenizer(tokenizer: Any) -> None:
    if tokenizer is None:
        return
    if not hasattr(tokenizer, "apply_chat_template"):
        raise TypeError(f"tokenizer must have apply_chat_template, got {type(tokenizer).__name__}")
    if getattr(tokenizer, "chat_template", "present") is None:
        raise ValueError(
            "tokenizer has no chat template (tokenizer.chat_template is None); pass tokenizer=None "
            "to use the plain 'User: ... / Assistant: ...' renderer"
        )


# ----------------------------------------------------------------------------- per-row adapters


def _need(row: Mapping, columns: Iterable[str], fmt: str, index: int) -> None:
    for col in columns:
        if col not in row:
            raise ValueError(
                f"missing column '{col}' in row {index} (format '{fmt}' needs "
                f"{', '.join(_FORMAT_COLUMNS[fmt])}; row keys: {sorted(map(str, row.keys()))})"
            )


def _row_hh(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    chosen = _expect_str(row["chosen"], "chosen", i)
    rejected = _expect_str(row["rejected"], "rejected", i)
    try:
        prompt_c, resp_c = split_hh_transcript(chosen)
        prompt_r, resp_r = split_hh_transcript(rejected)
    except ValueError as err:
        raise ValueError(f"row {i}: {err}") from None
    if prompt_c != prompt_r:
        raise ValueError(f"row {i}: chosen and rejected transcripts do not share the same prompt")
    return {"prompt": prompt_c, "chosen": resp_c, "rejected": resp_r}


def _row_trl_standard(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    return {
        "prompt": _expect_str(row["prompt"], "prompt", i),
        "chosen": _expect_str(row["chosen"], "chosen", i),
        "rejected": _expect_str(row["rejected"], "rejected", i),
    }


def _row_trl_implicit(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    chosen = _expect_str(row["chosen"], "chosen", i)
    rejected = _expect_str(row["rejected"], "rejected", i)
    if chosen == rejected:
        raise ValueError(f"chosen == rejected in row {i}: identical responses carry no preference")
    if not chosen.strip() or not rejected.strip():
        raise ValueError(f"empty text in row {i}")
    prompt, resp_c, resp_r = split_common_prefix(chosen, rejected)
    return {"prompt": prompt, "chosen": resp_c, "rejected": resp_r}


def _row_conv(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    prompt_msgs = _expect_messages(row["prompt"], "prompt", i)
    chosen_msgs = _expect_messages(row["chosen"], "chosen", i)
    rejected_msgs = _expect_messages(row["rejected"], "rejected", i)
    prompt, resp_c = _render_conversation(prompt_msgs, chosen_msgs, tokenizer, i, "chosen")
    _, resp_r = _render_conversation(prompt_msgs, rejected_msgs, tokenizer, i, "rejected")
    return {"prompt": prompt, "chosen": resp_c, "rejected": resp_r}


def _split_shared_messages(chosen: list[dict], rejected: list[dict], i: int) -> tuple[list, list, list]:
    if chosen == rejected:
        raise ValueError(f"chosen == rejected in row {i}: identical responses carry no preference")
    k = 0
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    # a conversation that is a prefix of the other leaves one side without a response
    k = min(k, len(chosen) - 1, len(rejected) - 1)
    return chosen[:k], chosen[k:], rejected[k:]


def _row_conv_implicit(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    chosen_msgs = _expect_messages(row["chosen"], "chosen", i)
    rejected_msgs = _expect_messages(row["rejected"], "rejected", i)
    if not chosen_msgs or not rejected_msgs:
        raise ValueError(f"empty text in row {i} (a conversation with no messages)")
    prompt_msgs, resp_c_msgs, resp_r_msgs = _split_shared_messages(chosen_msgs, rejected_msgs, i)
    prompt, resp_c = _render_conversation(prompt_msgs, resp_c_msgs, tokenizer, i, "chosen")
    _, resp_r = _render_conversation(prompt_msgs, resp_r_msgs, tokenizer, i, "rejected")
    return {"prompt": prompt, "chosen": resp_c, "rejected": resp_r}


def _row_rewardbench(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    out = _row_trl_standard(row, i, tokenizer, opts)
    subset = _expect_str(row["subset"], "subset", i)
    out["subset"] = subset
    # a subset outside RewardBench's map keeps a valid section it already has, else "other"
    given = row.get("section")
    fallback = given if isinstance(given, str) and given in SECTIONS else "other"
    out["section"] = REWARDBENCH_SUBSET_TO_SECTION.get(subset, fallback)
    return out


def _row_ultrafeedback(row: Mapping, i: int, tokenizer: Any, opts: dict) -> dict:
    out = _row_conv_implicit(row, i, tokenizer, opts)
    if "prompt_id" in row and row["prompt_id"] is not None:
        out["id"] = _expect_str(row["prompt_id"], "prompt_id", i)
    if opts.get("margin_from_scores"):
        for col in ("score_chosen", "score_rejected"):
            if col not in row:
                raise ValueError(f"missing column '{col}' in row {i} (needed by margin_from_scores=True)")
        out["margin"] = _as_float(row["score_chosen"], "score_chosen", i) - _as_float(
            row["score_rejected"], "score_rejected", i
        )
    return out


_ROW_ADAPTERS: dict[str, Callable[[Mapping, int, Any, dict], dict]] = {
    "hh_rlhf": _row_hh,
    "trl_standard": _row_trl_standard,
    "trl_implicit": _row_trl_implicit,
    "trl_conversational": _row_conv,
    "trl_conversational_implicit": _row_conv_implicit,
    "rewardbench": _row_rewardbench,
    "ultrafeedback": _row_ultrafeedback,
}
_IMPLICIT_PROMPT = {"hh_rlhf", "trl_implicit", "trl_conversational_implicit", "ultrafeedback"}


# ----------------------------------------------------------------------------- validation


def _as_float(value: Any, column: str, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"column '{column}' in row {index} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"column '{column}' in row {index} is not finite ({value})")
    return value


def _optional_value(name: str, value: Any, index: int) -> Any:
    kind = OPTIONAL_COLUMNS[name]
    if kind is float:
        out = _as_float(value, name, index)
        if name == "agreement" and not 0.0 <= out <= 1.0:
            raise ValueError(f"column 'agreement' in row {index} must lie in [0, 1], got {out}")
        return out
    if name == "id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # RewardBench ids are integers
    out = _expect_str(value, name, index)
    if name == "section" and out not in SECTIONS:
        raise ValueError(f"column 'section' in row {index} is {out!r}, expected one of {SECTIONS}")
    return out


def _canonical_row(row: Mapping, index: int, fmt: str, tokenizer: Any, opts: dict) -> dict:
    if not isinstance(row, Mapping):
        raise TypeError(f"row {index} must be a dict, got {type(row).__name__}")
    _need(row, _FORMAT_COLUMNS[fmt], fmt, index)
    out = {
        name: _optional_value(name, row[name], index)
        for name in OPTIONAL_COLUMNS
        # None is a missing value; NaN too in text columns (a CSV's empty cell), while a NaN
        # margin or score is refused by _optional_value as not finite.
        if row.get(name) is not None and not (OPTIONAL_COLUMNS[name] is str and _is_null(row[name]))
    }
    out.update(_ROW_ADAPTERS[fmt](row, index, tokenizer, opts))  # derived values win
    for col in ("chosen", "rejected"):
        if not out[col].strip():
            raise ValueError(f"empty text in row {index} (column '{col}')")
    if not out["prompt"].strip() and fmt not in _IMPLICIT_PROMPT:
        raise ValueError(f"empty text in row {index} (column 'prompt')")
    if out["chosen"] == out["rejected"]:
        raise ValueError(f"chosen == rejected in row {index}: identical responses carry no preference")
    return out


def _rows_of(data: Any) -> list[Mapping]:
    if isinstance(data, datasets.DatasetDict):
        raise TypeError(f"got a DatasetDict with splits {list(data)}; pass one split, e.g. data['train']")
    if isinstance(data, datasets.Dataset):
        return data.to_list()
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return data.to_dict("records")
    except ImportError:  # pragma: no cover - pandas ships with datasets
        pass
    if isinstance(data, Mapping):
        raise TypeError("got a single dict; pass a list of rows, e.g. [row]")
    if isinstance(data, (list, tuple)):
        return list(data)
    raise TypeError(
        f"data must be a datasets.Dataset, a list of dicts or a pandas DataFrame, got {type(data).__name__}"
    )


def _build_dataset(rows: list[dict]) -> datasets.Dataset:
    present = [name for name in OPTIONAL_COLUMNS if any(name in r for r in rows)]
    for name in present:
        missing = [i for i, r in enumerate(rows) if name not in r]
        if missing:
            raise ValueError(
                f"column '{name}' is missing in row {missing[0]} but present in other rows "
                "(a null value counts as missing); fill it in every row or drop the column"
            )
    columns = list(REQUIRED_COLUMNS) + present
    features = datasets.Features({c: CANONICAL_FEATURES[c] for c in columns})
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns}, features=features)


# ----------------------------------------------------------------------------- public API


def _first_complete_row(rows: list) -> Any:
    """The row to detect the format from: the first whose chosen and rejected are not null (a
    null in row 0 is then reported as that row's missing text, not as an unknown format)."""
    for row in rows:
        if isinstance(row, Mapping) and not _is_null(row.get("chosen")) and not _is_null(row.get("rejected")):
            return row
    return rows[0]


def to_canonical(
    data: Any,
    fmt: str = "auto",
    tokenizer: Any = None,
    *,
    margin_from_scores: bool = False,
    errors: str = "raise",
) -> datasets.Dataset:
    """Convert preference rows (Dataset, list of dicts or DataFrame) to the canonical schema.

    fmt: one of `KNOWN_FORMATS`, or "auto" to detect it from the first row.
    tokenizer: renders conversations with its chat template (string formats ignore it).
    margin_from_scores: UltraFeedback only, margin = score_chosen - score_rejected.
    errors: "raise" (default) or "drop": drop rows that fail with ValueError (empty or identical
    responses, unsplittable transcripts) and log how many; TypeErrors always raise.
    """
    if errors not in ("raise", "drop"):
        raise ValueError(f"errors must be 'raise' or 'drop', got {errors!r}")
    rows = _rows_of(data)
    if not rows:
        raise ValueError("no rows to convert (empty data)")
    if fmt == "auto":
        fmt = detect_format(_first_complete_row(rows))
    elif fmt not in KNOWN_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(KNOWN_FORMATS)}")
    _check_tokenizer(tokenizer)
    opts = {"margin_from_scores": bool(margin_from_scores)}
    out, dropped = [], []
    for i, row in enumerate(rows):
        try:
            out.append(_canonical_row(row, i, fmt, tokenizer, opts))
        except ValueError as err:
            if errors == "raise":
                raise
            dropped.append((i, str(err)))
    if dropped:
        logger.warning("to_canonical dropped %d of %d rows; first: %s", len(dropped), len(rows), dropped[0][1])
    if not out:
        raise ValueError(f"every row was invalid; first: {dropped[0][1]}")
    return _build_dataset(out)


def from_hh_rlhf(data: Any, *, errors: str = "raise") -> datasets.Dataset:
    """Anthropic HH-RLHF transcripts -> canonical (see the module docstring for the split)."""
    return to_canonical(data, fmt="hh_rlhf", errors=errors)


def from_trl(data: Any, tokenizer: Any = None, *, errors: str = "raise") -> datasets.Dataset:
    """Any of TRL's four preference layouts (standard/conversational x explicit/implicit prompt)."""
    rows = _rows_of(data)
    if not rows:
        raise ValueError("no rows to convert (empty data)")
    fmt = detect_format(rows[0])
    if not fmt.startswith("trl_") and fmt != "hh_rlhf":  # HH transcripts are valid implicit-prompt text
        raise ValueError(f"rows look like format '{fmt}', not one of TRL's preference formats")
    fmt = "trl_implicit" if fmt == "hh_rlhf" else fmt
    return to_canonical(rows, fmt=fmt, tokenizer=tokenizer, errors=errors)


def from_rewardbench(data: Any, *, errors: str = "raise") -> datasets.Dataset:
    """RewardBench v1 rows -> canonical, with `subset`, `section` and `id` kept."""
    return to_canonical(data, fmt="rewardbench", errors=errors)


def from_ultrafeedback(
    data: Any, tokenizer: Any = None, *, margin_from_scores: bool = False, errors: str = "raise"
) -> datasets.Dataset:
    """HuggingFaceH4/ultrafeedback_binarized rows -> canonical (`id` = prompt_id)."""
    return to_canonical(
        data, fmt="ultrafeedback", tokenizer=tokenizer, margin_from_scores=margin_from_scores, errors=errors
    )


# ----------------------------------------------------------------------------- loading

_LOCAL_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _offline() -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("HF_DATASETS_OFFLINE", ""))
    return any(f.upper() in ("1", "ON", "YES", "TRUE") for f in flags) or bool(
        getattr(datasets.config, "HF_HUB_OFFLINE", False)
    )


class OfflineError(RuntimeError):
    """A hub dataset was requested while the course runs offline."""


# Words that name a split in a file name, as datasets' own split inference reads them. A folder
# whose files carry such names is split-named: it is read by exact split, never mixed.
SPLIT_KEYWORDS: tuple[str, ...] = (
    "train", "training", "validation", "valid", "val", "dev", "test", "testing", "eval",
    "evaluation",
)


def _utf8_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as err:
        raise ValueError(f"'{path.name}' is not UTF-8 text (undecodable byte at offset "
                         f"{err.start}); save it as UTF-8") from None


def _json_rows(items: list, path: Path, what: str) -> list[dict]:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"{what} {i + 1 if what == 'line' else i} of '{path.name}' holds "
                             f"{type(item).__name__}, not a row object {{\"chosen\": ..., ...}}")
    return items


def _read_jsonl(path: Path, text: str) -> list[dict]:
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"line {n} of '{path.name}' is not valid JSON: {err.msg} "
                             f"(column {err.colno})") from None
        if not isinstance(item, dict):
            raise ValueError(f"line {n} of '{path.name}' holds {type(item).__name__}, not a row "
                             "object {\"chosen\": ..., \"rejected\": ...}")
        rows.append(item)
    return rows


def _read_json(path: Path, text: str) -> list[dict]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1 and lines[0].lstrip().startswith("{"):
            return _read_jsonl(path, text)  # JSON Lines saved as .json
        raise ValueError(f"'{path.name}' is not valid JSON: {err.msg} (line {err.lineno}, "
                         f"column {err.colno})") from None
    if isinstance(doc, list):
        return _json_rows(doc, path, "item")
    if (isinstance(doc, dict) and doc and all(isinstance(v, list) and v for v in doc.values())
            and all(isinstance(item, dict) for v in doc.values() for item in v)
            and all(_names_a_split(str(k)) for k in doc)):
        # {"train": [rows], "test": [rows]}: splits, not columns (each value is a list of rows)
        counts = ", ".join(f"{k!r}: {len(v)} rows" for k, v in doc.items())
        raise ValueError(f"'{path.name}' holds splits as keys ({counts}), not one table of rows: "
                         "a file is one split. Save each split to its own file (train.jsonl, "
                         "test.jsonl) in a folder and pass the folder with split=..., or pass "
                         "one split's rows")
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        sizes = {len(v) for v in doc.values()}
        if len(sizes) != 1:
            raise ValueError(f"'{path.name}' holds columns of different lengths {sorted(sizes)}")
        keys = list(doc)
        return [dict(zip(keys, values)) for values in zip(*doc.values())]
    if isinstance(doc, dict):
        return [doc]
    raise ValueError(f"'{path.name}' holds a JSON {type(doc).__name__}; expected a list of row "
                     "objects, one object per line (JSON Lines), or columns {\"chosen\": [...], ...}")


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for damaged files
        detail = str(err).replace(str(path), path.name)  # no absolute paths in messages
        raise ValueError(f"cannot read '{path.name}' as Parquet (damaged or not Parquet): "
                         f"{detail}") from None


def _read_csv(path: Path) -> list[dict]:
    import pandas as pd

    text_columns = {c: str for c in (*REQUIRED_COLUMNS, "section", "subset", "id")}
    try:
        frame = pd.read_csv(path, dtype=text_columns, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise ValueError(f"'{path.name}' is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"cannot read '{path.name}' as CSV: {err}") from None
    # Empty cells are NaN in pandas; None makes them missing values for the checks that follow.
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _read_file(path: Path) -> list[dict]:
    """Rows of one local file, read with the standard library (JSON), pyarrow or pandas, so a
    damaged file gets an error that names the file and the line instead of a datasets traceback."""
    kind = path.suffix.lower()
    if kind == ".parquet":
        return _read_parquet(path)
    if kind == ".csv":
        return _read_csv(path)
    text = _utf8_text(path)
    return _read_jsonl(path, text) if kind == ".jsonl" else _read_json(path, text)


def _read_local_files(files: list[Path]) -> list[dict]:
    builders = {_LOCAL_BUILDERS[f.suffix.lower()] for f in files}
    if len(builders) != 1:
        raise ValueError(f"mixed file types {sorted(f.name for f in files)}; keep one format per folder")
    rows: list[dict] = []
    for f in files:
        part = _read_file(f)
        if not part:
            raise ValueError(f"'{f.name}' holds no rows (empty file)")
        rows.extend(part)
    return rows


_SHARD_SUFFIX = re.compile(r"[-_]\d+(?:-of-\d+)?$")


def split_of_file(name: str) -> str:
    """The split name of a data file: its stem without a shard number.

    "train.jsonl" and "train-00000-of-00002.parquet" are "train", "test_prefs.jsonl" is
    "test_prefs", "training.jsonl" is "training": names are compared exactly, never by prefix.
    """
    return _SHARD_SUFFIX.sub("", Path(name).stem)


def _names_a_split(name: str) -> bool:
    """Does the file name look like a split (its first word is train, test, val, dev, ...)?"""
    return re.split(r"[-_.]", split_of_file(name), maxsplit=1)[0].lower() in SPLIT_KEYWORDS


def _local_files(path: Path, split: str | None) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in _LOCAL_BUILDERS:
            raise ValueError(
                f"unsupported file type '{path.suffix}' for '{path.name}'; use {sorted(_LOCAL_BUILDERS)}"
            )
        return [path]  # a single file is one split
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str or None, got {type(split).__name__}")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _LOCAL_BUILDERS)
    if not files:
        raise FileNotFoundError(f"no {'/'.join(sorted(_LOCAL_BUILDERS))} files in directory '{path.name}'")
    named = {p: split_of_file(p.name) for p in files}
    names = [p.name for p in files]
    split_like = [p for p in files if _names_a_split(p.name)]
    if split is None:
        # Everything in the folder, which must then hold one split only.
        if len(set(named.values())) > 1 and split_like:
            raise ValueError(f"folder '{path.name}' holds files of several splits ({names}); "
                             "pass split=... or the path of one file")
        return files
    matching = [p for p, name in named.items() if name == split]
    if matching:
        return matching
    if split == "train" and not split_like:
        return files  # like datasets: a folder of files without split names is the train split
    raise ValueError(f"no file for split '{split}' in '{path.name}' (files: {names}); split names "
                     "are matched exactly (train.jsonl, train-00000.parquet, ...): pass the split "
                     "a file is named for, or the path of one file")


def read_rows(path: str | os.PathLike, split: str | None = "train") -> list[dict]:
    """The raw rows (dicts, not yet canonical) of a local file or of one split of a folder, with
    the same file and split rules as `load_pairs`. For data that is not pairwise, e.g.
    RewardBench 2's one-chosen-three-rejected rows."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or path, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: '{os.fspath(path)}'")
    rows = _read_local_files(_local_files(path, split))
    if not rows:
        raise ValueError(f"'{path.name}' holds no rows")
    return rows


def load_pairs(
    path_or_name: str | os.PathLike,
    fmt: str = "auto",
    split: str | None = "train",
    tokenizer: Any = None,
    **kwargs: Any,
) -> datasets.Dataset:
    """Load preference pairs from a local file/folder (or, online only, the hub) as canonical.

    Local: a .json/.jsonl/.parquet/.csv file (one split; `split` is ignored) or a folder of such
    files, read offline (JSON with the standard library, so a broken line is named). In a folder,
    a file belongs to a split when its name says so exactly (`split_of_file`: "test.jsonl",
    "train-00000-of-00002.parquet"; "training.jsonl" is split "training", not "train"). A folder
    whose files carry no split name is the "train" split. A folder never mixes splits: a split
    with no file of its name, or ``split=None`` on a folder of several splits, is a ValueError
    listing the files. Missing path -> FileNotFoundError naming it.

    Hub (never required by the course): a name like "Anthropic/hh-rlhf" is passed to
    ``datasets.load_dataset(name, split=split)`` -- only when not offline. rmcourse sets
    ``HF_HUB_OFFLINE=1`` on import, so to use the real data on a machine with network, start
    Python with ``HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0`` set *before* importing rmcourse, then::

        load_pairs("Anthropic/hh-rlhf", split="test")                          # hh_rlhf
        load_pairs("HuggingFaceH4/ultrafeedback_binarized", split="test_prefs")  # ultrafeedback
        load_pairs("allenai/reward-bench", split="filtered")                   # rewardbench
        load_pairs("trl-lib/ultrafeedback_binarized", split="test")            # trl_conversational_implicit

    Extra keyword arguments go to `to_canonical` (margin_from_scores, errors).
    """
    if not isinstance(path_or_name, (str, os.PathLike)):
        raise TypeError(f"path_or_name must be a str or path, got {type(path_or_name).__name__}")
    path = Path(path_or_name)
    if path.exists():
        data = read_rows(path, split)
    elif str(path.parent) not in ("", ".") and path.parent.is_dir():
        # "data/pairs" matches a hub name's shape, but a local folder "data" exists: a missing
        # local file is the likelier mistake, and the hub message would send the learner online
        raise FileNotFoundError(f"no such file or directory: '{path_or_name}' (the folder "
                                f"'{path.parent}' exists but holds no '{path.name}'; check the name, "
                                "or run the cell that writes it)")
    elif (
        isinstance(path_or_name, str)
        and _HUB_NAME.fullmatch(path_or_name)
        and path.suffix.lower() not in _LOCAL_BUILDERS
    ):
        if _offline():
            raise OfflineError(
                f"'{path_or_name}' looks like a Hugging Face hub dataset, but this course runs "
                "offline (rmcourse sets HF_HUB_OFFLINE=1). To load the real data on a machine with "
                "network, set HF_HUB_OFFLINE=0 and HF_DATASETS_OFFLINE=0 before importing rmcourse, "
                "or download the files elsewhere and pass the local .jsonl/.parquet path."
            )
        data = datasets.load_dataset(path_or_name, split=split)
    else:
        raise FileNotFoundError(f"no such file or directory: '{path_or_name}'")
    return to_canonical(data, fmt=fmt, tokenizer=tokenizer, **kwargs)
