"""Turn (prompt, response) text into token ids a reward model reads, and batch pairs of them.

Input formats (chosen by `template="auto"` from the tokenizer):
- "pair" (encoders such as BERT/MiniLM): the sentence-pair format the tokenizer itself builds,
  `[CLS] prompt [SEP] response [SEP]`, with token_type_ids 0 for the prompt part and 1 for the
  response part. BERT adds a learned token-type embedding to every token, so token_type_ids change
  the reward: we produce exactly what `tokenizer(prompt, response)` produces, which means a
  checkpoint can be scored later with transformers alone.
- "chat" (decoders with a chat template, such as SmolLM2-Instruct): the conversation
  `[{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]` rendered by
  the tokenizer's chat template (SmolLM2's adds its default system line), as
  `apply_chat_template` does (no extra special tokens). The template text around the two contents
  and the contents themselves are tokenized separately and concatenated, so the prompt can be cut
  on token boundaries; for ordinary text this equals tokenizing the rendered string (tested).
- "plain" (decoders without a chat template): the tokenizer's own leading special tokens, prompt,
  "\n\n", response, eos.

Truncation policy (one rule, everywhere): the response is never cut, because the reward is about
the response. When prompt + response + format tokens exceed `max_length`, the prompt is cut from
the LEFT, keeping its end, closest to the response: in a dialogue that is the last user turn. In a
single-turn prompt the question often comes first and a left cut can remove it, so choose
`max_length` from the length percentiles of the data, so that (almost) nothing is cut (chapter 02,
section 9). Contrast the learning document's `tokenizer(prompt + ' ' + response, truncation=True)`:
one flat string with no prompt/response boundary, cut on the right, i.e. the END of the response,
chosen and rejected independently. A text whose response
alone (plus format tokens) does not fit is dropped and counted, not silently cut (TRL drops too,
trl issue #2488). `tokenize_pairs` cuts chosen and rejected to the SAME prompt tokens, so both
sides of a comparison see the same context.

Batching: `PairCollator` stacks the B chosen rows and then the B rejected rows into one
[2B, L] batch (one forward pass, not two) and pads to the longest row in the batch (dynamic
padding) instead of a fixed 512 (the seed's `padding='max_length'`). `length_grouped_batches`
puts rows of similar length together so even less padding is computed.
"""
from __future__ import annotations

import numbers
import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "TEMPLATES",
    "PairLayout",
    "TruncationReport",
    "OVERFLOW_POLICIES",
    "pair_layout",
    "encode_pair_texts",
    "tokenize_pairs",
    "PairCollator",
    "pad_batch",
    "length_grouped_batches",
    "padding_fraction",
]

TEMPLATES = ("auto", "pair", "chat", "plain")

# Placeholders rendered through a chat template to find where the contents go.
_PROMPT_MARK = "\u2063RMCOURSE_PROMPT\u2063"
_RESPONSE_MARK = "\u2063RMCOURSE_RESPONSE\u2063"


# ---------------------------------------------------------------- the report
OVERFLOW_POLICIES = ("drop", "truncate", "error")


@dataclass(frozen=True)
class TruncationReport:
    """What the truncation policy did: `n_total` in, `n_truncated` kept with a cut prompt,
    `n_dropped` removed because a response alone does not fit `max_length`, and (only under
    ``overflow="truncate"``) `n_response_truncated` kept with a response cut from the right."""

    n_total: int
    n_truncated: int
    n_dropped: int
    max_length: int | None = None
    unit: str = "pairs"
    n_response_truncated: int = 0

    @property
    def n_kept(self) -> int:
        return self.n_total - self.n_dropped

    def __str__(self) -> str:
        def pct(n: int) -> str:
            return f"{100 * n / self.n_total:.1f}%" if self.n_total else "0%"

        limit = f" {self.max_length}" if self.max_length is not None else ""
        text = (
            f"{self.n_total} {self.unit}: {self.n_kept} kept, "
            f"{self.n_truncated} with the prompt cut from the left ({pct(self.n_truncated)}), "
            f"{self.n_dropped} dropped because a response alone exceeds max_length{limit} "
            f"({pct(self.n_dropped)})"
        )
        if self.n_response_truncated:
            text += (f", {self.n_response_truncated} with a response cut from the right to fit "
                     f"({pct(self.n_response_truncated)})")
        return text


def _check_overflow(overflow: Any) -> str:
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
    return overflow


def _cut_to_fit(prompt: list[int], responses: Sequence[list[int]], layout: "PairLayout",
                max_length: int) -> tuple[list[int], list[list[int]]]:
    """overflow="truncate" for a response that alone does not fit: keep the END of the prompt
    (at most a quarter of the room) and the START of each response, cut from the right as
    RewardBench's scripts cut over-long texts (tokenizer truncation, right side)."""
    room = max_length - layout.n_format_tokens
    keep = min(len(prompt), room // 4)
    prompt = prompt[len(prompt) - keep:] if keep else []
    return prompt, [r[: room - keep] for r in responses]


# ---------------------------------------------------------------- the format
@dataclass(frozen=True)
class PairLayout:
    """Token ids a format puts around the prompt and the response, with their token types.

    input_ids = prefix + prompt + middle + response + suffix. `*_types` are None when the
    tokenizer does not use token_type_ids.
    """

    template: str
    prefix: tuple[int, ...]
    middle: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_types: tuple[int, ...] | None = None
    prompt_type: int = 0
    middle_types: tuple[int, ...] | None = None
    response_type: int = 0
    suffix_types: tuple[int, ...] | None = None

    @property
    def n_format_tokens(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)

    @property
    def uses_token_types(self) -> bool:
        return self.prefix_types is not None

    def build(self, prompt_ids: Sequence[int], response_ids: Sequence[int]) -> tuple[list[int], list[int] | None]:
        """(input_ids, token_type_ids or None) for already-cut prompt and response ids."""
        ids = [*self.prefix, *prompt_ids, *self.middle, *response_ids, *self.suffix]
        if not self.uses_token_types:
            return ids, None
        types = [
            *self.prefix_types,
            *([self.prompt_type] * len(prompt_ids)),
            *self.middle_types,
            *([self.response_type] * len(response_ids)),
            *self.suffix_types,
        ]
        return ids, types


def _is_tokenizer(tokenizer: Any) -> bool:
    return callable(tokenizer) and hasattr(tokenizer, "convert_tokens_to_ids")


def _uses_token_types(tokenizer: Any) -> bool:
    return "token_type_ids" in getattr(tokenizer, "model_input_names", ())


def _text_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    # verbose=False: no "sequence length is longer than the specified maximum" warning; the
    # truncation policy below cuts every text to max_length and reports what it cut.
    return [list(x) for x in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]


def _find(haystack: list[int], needle: list[int], start: int = 0) -> int:
    for i in range(start, len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            return i
    return -1


def _pair_layout(tokenizer: Any) -> PairLayout:
    # Probe the tokenizer's own pair format with two texts of known ids.
    a, b = _text_ids(tokenizer, ["alpha", "omega"])
    enc = tokenizer("alpha", "omega", return_token_type_ids=_uses_token_types(tokenizer))
    full = list(enc["input_ids"])
    ia = _find(full, a)
    ib = _find(full, b, ia + len(a)) if ia >= 0 else -1
    if ia < 0 or ib < 0:
        raise ValueError("cannot find the sentence-pair format of this tokenizer; pass template='plain'")
    cut = (ia, ia + len(a), ib, ib + len(b))
    kw: dict[str, Any] = {}
    if _uses_token_types(tokenizer):
        t = list(enc["token_type_ids"])
        kw = dict(
            prefix_types=tuple(t[: cut[0]]),
            prompt_type=t[cut[0]],
            middle_types=tuple(t[cut[1] : cut[2]]),
            response_type=t[cut[2]],
            suffix_types=tuple(t[cut[3] :]),
        )
    return PairLayout("pair", tuple(full[: cut[0]]), tuple(full[cut[1] : cut[2]]), tuple(full[cut[3] :]), **kw)


def _chat_layout(tokenizer: Any) -> PairLayout:
    messages = [{"role": "user", "content": _PROMPT_MARK}, {"role": "assistant", "content": _RESPONSE_MARK}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    if text.count(_PROMPT_MARK) != 1 or text.count(_RESPONSE_MARK) != 1:
        raise ValueError("this tokenizer's chat template does not render the contents verbatim; "
                         "pass template='plain'")
    before, rest = text.split(_PROMPT_MARK)
    middle, after = rest.split(_RESPONSE_MARK)
    pre, mid, suf = _text_ids(tokenizer, [before, middle, after]) if before or middle or after else ([], [], [])
    return PairLayout("chat", tuple(pre), tuple(mid), tuple(suf))


def _plain_layout(tokenizer: Any) -> PairLayout:
    alone = _text_ids(tokenizer, ["alpha"])[0]
    full = list(tokenizer("alpha")["input_ids"])
    i = _find(full, alone)
    prefix = tuple(full[:i]) if i > 0 else ()
    suffix = (tokenizer.eos_token_id,) if tokenizer.eos_token_id is not None else ()
    return PairLayout("plain", prefix, tuple(_text_ids(tokenizer, ["\n\n"])[0]), suffix)


def pair_layout(tokenizer: Any, template: str = "auto") -> PairLayout:
    """The input format for this tokenizer: "pair" when it has a sentence-pair format with
    [SEP]-like tokens (encoders), else "chat" when it has a chat template, else "plain"."""
    if not _is_tokenizer(tokenizer):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; choose one of {TEMPLATES}")
    if template == "auto":
        if getattr(tokenizer, "sep_token_id", None) is not None and getattr(tokenizer, "cls_token_id", None) is not None:
            template = "pair"
        elif getattr(tokenizer, "chat_template", None):
            template = "chat"
        else:
            template = "plain"
    if template == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ValueError("template='chat' but this tokenizer has no chat template")
    return {"pair": _pair_layout, "chat": _chat_layout, "plain": _plain_layout}[template](tokenizer)


# ---------------------------------------------------------------- validation
def _check_texts(name: str, texts: Any, allow_empty: bool) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence) and not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{name} is empty")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name} at row {i} must be a str, got {type(t).__name__}")
        if not allow_empty and not t.strip():
            raise ValueError(f"empty text in {name} at row {i}")
    return texts


def _check_max_length(tokenizer: Any, max_length: Any, layout: PairLayout) -> int:
    if not isinstance(max_length, int) or isinstance(max_length, bool):
        raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < 1_000_000 and max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the model's limit of {limit} tokens")
    if max_length <= layout.n_format_tokens:
        raise ValueError(
            f"max_length={max_length} leaves no room for text: the {layout.template!r} format "
            f"itself takes {layout.n_format_tokens} tokens"
        )
    return max_length


def _prompt_room(layout: PairLayout, n_response: int, max_length: int) -> int:
    """How many prompt tokens fit next to this response; negative means the response cannot fit."""
    return max_length - layout.n_format_tokens - n_response


# ---------------------------------------------------------------- encoding
def encode_pair_texts(
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    max_length: int,
    template: str = "auto",
    return_token_type_ids: bool = False,
    overflow: str = "drop",
) -> tuple[list[list[int] | None], TruncationReport] | tuple[
    list[list[int] | None], list[list[int] | None], TruncationReport
]:
    """Encode each (prompt, response) under the truncation policy.

    Returns `(input_ids, report)`: one id list per pair, or None for a dropped pair (its response
    does not fit). With `return_token_type_ids=True` returns `(input_ids, token_type_ids, report)`
    (token_type_ids entries are None when the tokenizer has no token types).
    The prompt may be ""; a response must be non-empty. `overflow` says what happens to a
    response that alone does not fit: "drop" (None, counted), "error" (ValueError naming the
    first such row) or "truncate" (see `_cut_to_fit`; counted in `n_response_truncated`).
    """
    overflow = _check_overflow(overflow)
    prompts = _check_texts("prompts", prompts, allow_empty=True)
    responses = _check_texts("responses", responses, allow_empty=False)
    if len(prompts) != len(responses):
        raise ValueError(f"prompts has {len(prompts)} texts but responses has {len(responses)}")
    layout = pair_layout(tokenizer, template)
    max_length = _check_max_length(tokenizer, max_length, layout)
    p_ids = _text_ids(tokenizer, prompts)
    r_ids = _text_ids(tokenizer, responses)
    too_long = [i for i, r in enumerate(r_ids) if _prompt_room(layout, len(r), max_length) < 0]
    if too_long and overflow == "error":
        raise ValueError(f"{len(too_long)} of {len(r_ids)} responses do not fit max_length="
                         f"{max_length} tokens (first: row {too_long[0]}); raise max_length or "
                         "choose overflow='drop' or 'truncate'")
    ids_out: list[list[int] | None] = []
    types_out: list[list[int] | None] = []
    n_cut = n_drop = n_resp_cut = 0
    for p, r in zip(p_ids, r_ids):
        room = _prompt_room(layout, len(r), max_length)
        if room < 0 and overflow == "drop":
            ids_out.append(None)
            types_out.append(None)
            n_drop += 1
            continue
        if room < 0:
            n_cut += len(p) > (max_length - layout.n_format_tokens) // 4
            p, (r,) = _cut_to_fit(p, [r], layout, max_length)
            n_resp_cut += 1
        elif len(p) > room:
            p = p[len(p) - room :]  # keep the END of the prompt
            n_cut += 1
        ids, types = layout.build(p, r)
        ids_out.append(ids)
        types_out.append(types)
    report = TruncationReport(len(prompts), n_cut, n_drop, max_length, unit="texts",
                              n_response_truncated=n_resp_cut)
    if return_token_type_ids:
        return ids_out, types_out, report
    return ids_out, report


def _column(ds: Any, name: str) -> list:
    if name not in ds.column_names:
        raise ValueError(f"missing column {name!r} (have {ds.column_names})")
    return list(ds[name])


def tokenize_pairs(ds: Any, tokenizer: Any, max_length: int, template: str = "auto",
                   overflow: str = "drop") -> tuple[Any, TruncationReport]:
    """Tokenize a canonical pair dataset (prompt, chosen, rejected) for training.

    Returns `(tokenized, report)`. `tokenized` keeps the kept rows' original columns and adds
    `chosen_input_ids`, `rejected_input_ids`, `length` (longer side, for length grouping) and,
    for tokenizers with token types (BERT), `chosen_token_type_ids`, `rejected_token_type_ids`.
    Both sides get the same prompt tokens (the longer response decides the cut). When either
    response alone does not fit, `overflow` decides: "drop" the pair (default; counted), "error"
    (ValueError naming the first such row) or "truncate" (keep the end of the prompt, at most a
    quarter of the room, and the start of each response; counted in `n_response_truncated`).
    """
    import datasets

    overflow = _check_overflow(overflow)

    if isinstance(ds, list):
        if not ds:
            raise ValueError("no pairs: the list is empty")
        ds = datasets.Dataset.from_list(ds)
    if not isinstance(ds, datasets.Dataset):
        raise TypeError(f"ds must be a datasets.Dataset or a list of dicts, got {type(ds).__name__}")
    if len(ds) == 0:
        raise ValueError("no pairs: the dataset is empty")
    prompts = _check_texts("column 'prompt'", _column(ds, "prompt"), allow_empty=True)
    chosen = _check_texts("column 'chosen'", _column(ds, "chosen"), allow_empty=False)
    rejected = _check_texts("column 'rejected'", _column(ds, "rejected"), allow_empty=False)
    layout = pair_layout(tokenizer, template)
    max_length = _check_max_length(tokenizer, max_length, layout)
    p_ids = _text_ids(tokenizer, prompts)
    c_ids = _text_ids(tokenizer, chosen)
    r_ids = _text_ids(tokenizer, rejected)

    kept: list[int] = []
    cols: dict[str, list] = {"chosen_input_ids": [], "rejected_input_ids": [], "length": []}
    if layout.uses_token_types:
        cols.update(chosen_token_type_ids=[], rejected_token_type_ids=[])
    n_cut = n_resp_cut = 0
    rooms = [min(_prompt_room(layout, len(c), max_length), _prompt_room(layout, len(r), max_length))
             for c, r in zip(c_ids, r_ids)]
    too_long = [i for i, room in enumerate(rooms) if room < 0]
    if too_long and overflow == "error":
        raise ValueError(f"{len(too_long)} of {len(ds)} pairs have a response longer than "
                         f"max_length={max_length} tokens (first: row {too_long[0]}); raise "
                         "max_length or choose overflow='drop' or 'truncate'")
    for i, (p, c, r) in enumerate(zip(p_ids, c_ids, r_ids)):
        room = rooms[i]
        if room < 0 and overflow == "drop":
            continue
        if room < 0:
            n_cut += len(p) > (max_length - layout.n_format_tokens) // 4
            p, (c, r) = _cut_to_fit(p, [c, r], layout, max_length)
            n_resp_cut += 1
        elif len(p) > room:
            p = p[len(p) - room :]
            n_cut += 1
        kept.append(i)
        c_full, c_types = layout.build(p, c)
        r_full, r_types = layout.build(p, r)
        cols["chosen_input_ids"].append(c_full)
        cols["rejected_input_ids"].append(r_full)
        cols["length"].append(max(len(c_full), len(r_full)))
        if layout.uses_token_types:
            cols["chosen_token_type_ids"].append(c_types)
            cols["rejected_token_type_ids"].append(r_types)
    report = TruncationReport(len(ds), n_cut, len(ds) - len(kept), max_length, unit="pairs",
                              n_response_truncated=n_resp_cut)
    # datasets shows a "Flattening the indices" bar when columns are added after a select; the
    # report above already says what was dropped, so that bar is only noise.
    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        out = ds if len(kept) == len(ds) else ds.select(kept)
        for name in cols:
            if name in out.column_names:
                out = out.remove_columns(name)
        for name, values in cols.items():
            out = out.add_column(name, values)
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
    return out, report


# ---------------------------------------------------------------- batching
def _pad(seqs: list[list[int]], value: int, length: int, side: str) -> torch.Tensor:
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            row = torch.as_tensor(s, dtype=torch.long)
            if side == "right":
                out[i, : len(s)] = row
            else:
                out[i, length - len(s) :] = row
    return out


def pad_batch(
    tokenizer: Any,
    input_ids: Sequence[Sequence[int]],
    token_type_ids: Sequence[Sequence[int]] | None = None,
    padding_side: str | None = None,
    pad_to: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad id lists into {"input_ids", "attention_mask"[, "token_type_ids"]} LongTensors [N, L].

    L is the longest sequence, or `pad_to`. Pads use the tokenizer's pad id (mask 0, type 0) on
    the tokenizer's padding side unless `padding_side` overrides it.
    """
    pad_id = getattr(tokenizer, "pad_token_id", None)
    if pad_id is None:
        raise ValueError("the tokenizer has no pad token; load the model with load_reward_model, "
                         "which sets one")
    side = padding_side if padding_side is not None else getattr(tokenizer, "padding_side", "right")
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    seqs = [[int(x) for x in s] for s in input_ids]
    if not seqs:
        raise ValueError("nothing to pad: input_ids is empty")
    empty = [i for i, s in enumerate(seqs) if not s]
    if empty:
        raise ValueError(f"empty sequence in row {empty[0]}")
    longest = max(len(s) for s in seqs)
    if pad_to is not None and longest > pad_to:
        raise ValueError(f"a row has {longest} tokens, more than pad_to={pad_to}")
    length = pad_to if pad_to is not None else longest
    batch = {
        "input_ids": _pad(seqs, int(pad_id), length, side),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0, length, side),
    }
    if token_type_ids is not None:
        types = [[int(x) for x in t] for t in token_type_ids]
        if len(types) != len(seqs) or any(len(t) != len(s) for t, s in zip(types, seqs)):
            raise ValueError("token_type_ids must match input_ids row by row")
        batch["token_type_ids"] = _pad(types, 0, length, side)
    return batch


def _token_ids(value: Any, row: int, key: str) -> list[int]:
    """A row's token ids as ints; text (a CSV round trip writes lists as strings) and
    non-integral numbers are refused by name instead of failing inside int()."""
    if isinstance(value, (str, bytes)):
        shown = value[:40] + ("..." if len(value) > 40 else "")
        raise TypeError(f"row {row}: {key!r} is text ({shown!r}), not a list of token ids. A CSV "
                        "round trip writes lists as strings: keep tokenized pairs in JSONL or "
                        "parquet, or tokenize the text again with tokenize_pairs")
    if isinstance(value, (torch.Tensor, np.ndarray)):
        value = value.tolist()
    if not hasattr(value, "__iter__"):
        raise TypeError(f"row {row}: {key!r} must be a list of token ids, got {type(value).__name__}")
    out = []
    for x in value:
        if isinstance(x, bool) or not isinstance(x, (int, np.integer, float, np.floating)) or x != int(x):
            raise TypeError(f"row {row}: {key!r} holds {x!r}; token ids are whole numbers")
        out.append(int(x))
    return out


class PairCollator:
    """Collate tokenized pair rows into one stacked batch for a single forward pass.

    `collator(rows)` -> {"input_ids": LongTensor[2B, L], "attention_mask": LongTensor[2B, L],
    "token_type_ids": LongTensor[2B, L] (only for tokenizers with token types),
    "margin": FloatTensor[B] (only when the rows have a margin)}. Rows 0..B-1 are the chosen
    sides, rows B..2B-1 the rejected sides, in the same pair order.

    Padding: to the longest row in the batch, or to `pad_to` (the seed's fixed max_length=512
    baseline, kept to measure what it costs). Side: the tokenizer's `padding_side` unless
    `padding_side` ("left" | "right") overrides it. `max_length`, when given, is checked: a
    longer row raises instead of being silently cut.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int | None = None,
        pad_to: int | None = None,
        padding_side: str | None = None,
    ) -> None:
        if not _is_tokenizer(tokenizer):
            raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; load the model with load_reward_model, "
                             "which sets one")
        for name, value in (("max_length", max_length), ("pad_to", pad_to)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        side = padding_side if padding_side is not None else getattr(tokenizer, "padding_side", "right")
        if side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_to = pad_to
        self.padding_side = side
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.uses_token_types = _uses_token_types(tokenizer)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
            raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}")
        if len(rows) == 0:
            raise ValueError("cannot collate an empty batch")
        seqs: list[list[int]] = []
        types: list[list[int]] = []
        for side in ("chosen", "rejected"):
            for i, row in enumerate(rows):
                key = f"{side}_input_ids"
                if not isinstance(row, Mapping) or key not in row:
                    raise ValueError(f"row {i} has no {key!r}; tokenize with tokenize_pairs first")
                ids = _token_ids(row[key], i, key)
                if not ids:
                    raise ValueError(f"row {i} has an empty {key!r}")
                seqs.append(ids)
                if self.uses_token_types:
                    tkey = f"{side}_token_type_ids"
                    if tkey not in row:
                        raise ValueError(f"row {i} has no {tkey!r} but this tokenizer uses token types; "
                                         "tokenize with tokenize_pairs first")
                    t = _token_ids(row[tkey], i, tkey)
                    if len(t) != len(ids):
                        raise ValueError(f"row {i}: {tkey!r} and {key!r} differ in length")
                    types.append(t)
        longest = max(len(s) for s in seqs)
        if self.max_length is not None and longest > self.max_length:
            raise ValueError(f"a row has {longest} tokens, more than max_length={self.max_length}")
        if self.pad_to is not None and longest > self.pad_to:
            raise ValueError(f"a row has {longest} tokens, more than pad_to={self.pad_to}")
        batch = pad_batch(self.tokenizer, seqs, types if self.uses_token_types else None,
                          padding_side=self.padding_side, pad_to=self.pad_to)
        # A margin column is all-or-nothing: a None (null) margin would otherwise be trained as
        # margin 0, silently, whenever a whole batch happens to hold only such rows.
        has_margin = ["margin" in r for r in rows]
        if any(has_margin):
            values = []
            for i, r in enumerate(rows):
                value = r.get("margin")
                if value is None:
                    raise ValueError(f"row {i} has no margin (missing or None) but the batch "
                                     "carries a margin column; fill it or drop the column")
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise TypeError(f"margin in row {i} must be a number, got "
                                    f"{type(value).__name__} {value!r}")
                values.append(float(value))
            bad = [i for i, v in enumerate(values) if v != v or v in (float("inf"), float("-inf"))]
            if bad:
                raise ValueError(f"margin must be finite, got {values[bad[0]]} in row {bad[0]}")
            batch["margin"] = torch.tensor(values, dtype=torch.float32)
        return batch


def length_sorted_chunks(
    batch: Mapping[str, torch.Tensor], chunk_size: int, padding_side: str = "right"
) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Cut a padded batch into chunks of `chunk_size` rows of similar length, each trimmed to its
    own longest row: [(row indices, sub-batch), ...], longest rows first.

    The rows of a stacked pair batch (`PairCollator`) mix long and short sequences; padded
    together, every row costs as much as the longest. Sorted into chunks, a row is padded only
    to the longest row of its chunk. The batch's *composition* does not change, so a loss over
    all chunks' rewards has the gradient of one stacked forward, up to rounding, for models whose
    positions do not depend on padding (encoders with right padding).
    Keys without a sequence axis (e.g. "margin") are not allowed: pop them first.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if "attention_mask" not in batch:
        raise ValueError("batch has no 'attention_mask' to read the lengths from")
    mask = batch["attention_mask"]
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor) or value.shape != mask.shape:
            raise ValueError(f"batch[{key!r}] must be a tensor shaped like attention_mask "
                             f"{tuple(mask.shape)}; pop per-pair columns such as 'margin' first")
    lengths = mask.sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    chunks = []
    for start in range(0, len(order), chunk_size):
        rows = order[start:start + chunk_size]
        width = int(lengths[rows[0]])
        cols = slice(0, width) if padding_side == "right" else slice(mask.shape[1] - width, None)
        chunks.append((rows, {k: v[rows][:, cols] for k, v in batch.items()}))
    return chunks


def _check_lengths(lengths: Any) -> list[int]:
    if isinstance(lengths, (str, bytes)) or not hasattr(lengths, "__iter__"):
        raise TypeError(f"lengths must be a list of ints, got {type(lengths).__name__}")
    out = []
    for i, n in enumerate(lengths):
        if isinstance(n, bool) or not isinstance(n, (int,)) and not (hasattr(n, "__index__")):
            raise TypeError(f"lengths[{i}] must be an int, got {type(n).__name__}")
        if int(n) < 0:
            raise ValueError(f"lengths[{i}] is negative ({n})")
        out.append(int(n))
    if not out:
        raise ValueError("lengths is empty")
    return out


def length_grouped_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int = 0,
    shuffle: bool = True,
    mega_batch_mult: int = 50,
) -> list[list[int]]:
    """Batches of row indices with similar lengths, so dynamic padding pads little.

    shuffle=True (training): shuffle all indices (seeded), cut them into mega-batches of
    `mega_batch_mult * batch_size`, sort each mega-batch by length, cut it into batches, then
    shuffle the batch order. Randomness survives at the level of which rows meet; padding drops.
    shuffle=False (scoring): sort all indices by length (longest first), no randomness.
    Every index appears exactly once; only the last batch may be smaller.
    """
    lengths = _check_lengths(lengths)
    for name, value in (("batch_size", batch_size), ("mega_batch_mult", mega_batch_mult)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    idx = list(range(len(lengths)))
    if not shuffle:
        idx.sort(key=lambda i: (-lengths[i], i))
        return [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(idx)
    mega = mega_batch_mult * batch_size
    batches: list[list[int]] = []
    for s in range(0, len(idx), mega):
        group = sorted(idx[s : s + mega], key=lambda i: -lengths[i])
        batches.extend(group[k : k + batch_size] for k in range(0, len(group), batch_size))
    # keep a short remainder batch, but not always at the same place
    rng.shuffle(batches)
    return batches


def padding_fraction(lengths: Sequence[int], batches: Iterable[Sequence[int]], pad_to: int | None = None) -> float:
    """Share of the token positions in these batches that are padding (0 = no waste).

    Each batch is padded to its longest row, or to `pad_to` when given (the fixed-512 baseline).
    """
    lengths = _check_lengths(lengths)
    real = total = 0
    for b, batch in enumerate(batches):
        batch = list(batch)
        if not batch:
            raise ValueError(f"batch {b} is empty")
        ls = [lengths[i] for i in batch]
        width = pad_to if pad_to is not None else max(ls)
        if max(ls) > width:
            raise ValueError(f"batch {b} has a row of {max(ls)} tokens, more than pad_to={pad_to}")
        real += sum(ls)
        total += width * len(ls)
    if total == 0:
        raise ValueError("no batches")
    return 1.0 - real / total
