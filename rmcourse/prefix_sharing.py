"""Prefix-shared packing: a decoder reward model reads each pair's shared prompt ONCE.

The two rows of a preference pair start with the same tokens: the format, the prompt
(`tokenize_pairs` cuts both sides to the same prompt tokens) and any opening the two answers
share. In a causal model a token's hidden state depends only on the tokens before it, so those
shared tokens have the same hidden states in both rows, and computing them twice (as a stacked
[chosen; rejected] batch and TRL's RewardTrainer do) is wasted work. Packing puts a pair in ONE row:

    tokens     [ shared prefix (s) | chosen tail (a) | rejected tail (b) | padding ]
    positions    0 .. s-1            s .. s+a-1        s .. s+b-1          0 ...
    attention    causal, and the rejected tail never sees the chosen tail; no real token sees
                 padding, and a padding token sees only itself (an all-masked softmax row would
                 be NaN and poison the backward pass)

Each reward is read at the last token of its tail, through the model's own `score` head, as
`RewardModel` reads it (transformers' decoder classes apply `score` to every position and keep the
last real one; the same linear map on just those two positions gives the same numbers). The mask
reaches the model as a 4D tensor [B, 1, W, W] with explicit `position_ids`: transformers
(5.24, pinned) passes a 4D mask through untouched; SDPA takes it as bool (True = may attend),
eager attention adds it, so it gets 0 / float32 min.

Exactness (tests/test_prefix_sharing.py, float32): packed rewards equal the stacked forward's
within 1e-4 absolute on a tiny Llama and on SmolLM2 (measured max 3e-7 and 2e-6, for rewards of
size ~0.5), and every parameter's gradient of the Bradley-Terry loss within 1e-3 of that
gradient's largest entry (measured 6e-5 and 4e-5; the stacked forward's own left- and
right-padded gradients differ by 1.1e-4 on SmolLM2). Under bf16 autocast packed and stacked
rewards both carry bf16 rounding (measured 0.01-0.03 from float32 on SmolLM2; tested within 0.06).

Not for encoders: in BERT/MiniLM every token attends to every other, so the prompt's hidden
states depend on the answer that follows; sharing them changes the rewards
(`check_prefix_sharing` refuses an encoder, saying so).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

__all__ = [
    "PackedPairs",
    "SUPPORTED_ATTENTION",
    "check_prefix_sharing",
    "pack_pairs",
    "packed_rewards",
    "pair_mask_and_positions",
    "prefix_shared_stacked_rewards",
    "resolve_prefix_sharing",
    "shared_prefix_length",
    "token_savings",
    "unpad_rows",
]

# Attention implementations that take a 4D mask as given (rmcourse's float32 SDPA is SDPA).
SUPPORTED_ATTENTION = ("sdpa", "eager", "rmcourse_sdpa_float32")


def _check_ids(name: str, ids: Any) -> list[int]:
    if isinstance(ids, torch.Tensor):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"{name} must be a list of token ids, got {type(ids).__name__}")
    out = list(ids)
    if not out:
        raise ValueError(f"{name} is empty: every answer needs at least one token")
    for x in out:
        if isinstance(x, bool) or not isinstance(x, int):
            raise TypeError(f"{name} holds {x!r}; token ids are ints")
    return out


def shared_prefix_length(chosen_ids: Sequence[int], rejected_ids: Sequence[int]) -> int:
    """Tokens the two rows share at their start (format + prompt + any common opening of the
    answers), capped so that each answer keeps at least its own last token to be read from."""
    chosen_ids = _check_ids("chosen_ids", chosen_ids)
    rejected_ids = _check_ids("rejected_ids", rejected_ids)
    limit = min(len(chosen_ids), len(rejected_ids)) - 1
    n = 0
    while n < limit and chosen_ids[n] == rejected_ids[n]:
        n += 1
    return n


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def pair_mask_and_positions(n_shared: int, n_chosen: int, n_rejected: int,
                            width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask bool [W, W], positions long [W]) of one packed row
    [shared (n_shared) | chosen tail (n_chosen) | rejected tail (n_rejected) | padding].

    mask[i, j] is True when token i may attend to token j: j <= i and j is in the shared part or
    in i's own tail; a padding position attends only to itself. The rejected tail's positions
    restart at n_shared, where the shared part ends, as in its own unpacked row.
    """
    n_shared = _check_count("n_shared", n_shared, 0)
    n_chosen = _check_count("n_chosen", n_chosen, 1)
    n_rejected = _check_count("n_rejected", n_rejected, 1)
    real = n_shared + n_chosen + n_rejected
    width = real if width is None else _check_count("width", width, 1)
    if width < real:
        raise ValueError(f"width={width} is shorter than the packed row ({n_shared} shared + "
                         f"{n_chosen} chosen + {n_rejected} rejected = {real} tokens)")
    # segment of each position: 0 shared, 1 chosen, 2 rejected, 3 padding
    segment = torch.full((width,), 3, dtype=torch.long)
    segment[:n_shared] = 0
    segment[n_shared:n_shared + n_chosen] = 1
    segment[n_shared + n_chosen:real] = 2
    index = torch.arange(width)
    causal = index[None, :] <= index[:, None]
    same_or_shared = (segment[None, :] == 0) | (segment[None, :] == segment[:, None])
    mask = causal & same_or_shared & (segment[:, None] != 3) & (segment[None, :] != 3)
    mask |= torch.eye(width, dtype=torch.bool) & (segment[:, None] == 3)
    positions = torch.zeros(width, dtype=torch.long)
    positions[:n_shared + n_chosen] = torch.arange(n_shared + n_chosen)
    positions[n_shared + n_chosen:real] = torch.arange(n_shared, n_shared + n_rejected)
    return mask, positions


@dataclass
class PackedPairs:
    """B pairs packed one per row, right-padded to width W.

    `input_ids` / `position_ids` LongTensor[B, W]; `attention_mask` BoolTensor[B, 1, W, W]
    (True = may attend); `chosen_index` / `rejected_index` LongTensor[B], the positions whose
    hidden states give the rewards; `n_shared` the shared tokens of each pair;
    `n_tokens` real tokens in the packed rows and `n_tokens_separate` in the two unpacked rows.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    chosen_index: torch.Tensor
    rejected_index: torch.Tensor
    n_shared: list[int]
    n_tokens: int
    n_tokens_separate: int

    @property
    def saved_share(self) -> float:
        """Share of the unpacked rows' real tokens that packing does not compute."""
        return 1.0 - self.n_tokens / self.n_tokens_separate


def pack_pairs(chosen_ids: Sequence[Sequence[int]], rejected_ids: Sequence[Sequence[int]],
               pad_id: int) -> PackedPairs:
    """Pack pairs (token id lists, each a full row: format + prompt + answer) one per row.

    The shared part is `shared_prefix_length` of the two rows; rows are right-padded with
    `pad_id` to the longest packed row.
    """
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"pad_id must be a token id (an int >= 0), got {pad_id!r}")
    if isinstance(chosen_ids, (str, bytes)) or isinstance(rejected_ids, (str, bytes)):
        raise TypeError("chosen_ids and rejected_ids must be lists of token-id lists")
    chosen_ids, rejected_ids = list(chosen_ids), list(rejected_ids)
    if not chosen_ids:
        raise ValueError("no pairs to pack")
    if len(chosen_ids) != len(rejected_ids):
        raise ValueError(f"{len(chosen_ids)} chosen rows but {len(rejected_ids)} rejected rows")
    rows, shapes = [], []
    for i, (c, r) in enumerate(zip(chosen_ids, rejected_ids)):
        c, r = _check_ids(f"chosen row {i}", c), _check_ids(f"rejected row {i}", r)
        s = shared_prefix_length(c, r)
        rows.append(c + r[s:])
        shapes.append((s, len(c) - s, len(r) - s))
    width = max(len(row) for row in rows)
    n = len(rows)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.empty((n, 1, width, width), dtype=torch.bool)
    positions = torch.empty((n, width), dtype=torch.long)
    for i, (row, (s, a, b)) in enumerate(zip(rows, shapes)):
        input_ids[i, :len(row)] = torch.as_tensor(row)
        mask[i, 0], positions[i] = pair_mask_and_positions(s, a, b, width)
    return PackedPairs(
        input_ids=input_ids, attention_mask=mask, position_ids=positions,
        chosen_index=torch.tensor([s + a - 1 for s, a, _ in shapes]),
        rejected_index=torch.tensor([s + a + b - 1 for s, a, b in shapes]),
        n_shared=[s for s, _, _ in shapes],
        n_tokens=sum(len(row) for row in rows),
        n_tokens_separate=sum(len(c) + len(r) for c, r in zip(chosen_ids, rejected_ids)))


def check_prefix_sharing(model: Any) -> None:
    """Refuse, with the reason, a model whose rewards packing would not reproduce.

    Needs an rmcourse decoder RewardModel (an encoder's prompt attends to the answer, so its
    prompt states are not shared), the correct pad handling (the pad == eos pitfall mode reads
    another token than each answer's last), a `score` head, and an attention implementation
    that takes a 4D mask (`SUPPORTED_ATTENTION`).
    """
    from rmcourse.models import RewardModel

    if not isinstance(model, RewardModel):
        raise TypeError(f"prefix sharing needs an rmcourse RewardModel, got {type(model).__name__}")
    if not model.is_decoder:
        raise ValueError(
            "prefix sharing is not exact for an encoder: its attention runs both ways, so the "
            "prompt's hidden states depend on the answer after it and cannot be computed once "
            "for both answers. Use the stacked forward (prefix_sharing=False)")
    if model.pad_equals_eos:
        raise ValueError("prefix sharing reads each answer's last token, but this model is in the "
                         "pad == eos pitfall mode (make_pad_equal_eos), where transformers reads "
                         "the last token that is not eos: the two would differ")
    if not isinstance(getattr(model.hf, "score", None), torch.nn.Linear):
        raise ValueError(f"{type(model.hf).__name__} has no `score` head (nn.Linear) to read the "
                         "packed rewards with")
    attention = getattr(model.hf.config, "_attn_implementation", None)
    if attention not in SUPPORTED_ATTENTION:
        raise ValueError(f"prefix sharing needs a 4D attention mask, which attention "
                         f"{attention!r} does not take; load the model with attention "
                         f"{' or '.join(SUPPORTED_ATTENTION[:2])}")


def resolve_prefix_sharing(setting: Any, model: Any, world_size: int = 1) -> bool:
    """Whether the trainer packs pairs, for `TrainConfig.prefix_sharing` = "auto" | True | False.

    "auto": yes for a decoder RewardModel that `check_prefix_sharing` accepts, trained in one
    process (the packed forward calls the model's body directly, past DistributedDataParallel's
    wrapper, which would then not average the gradients); no otherwise. True: yes, or the
    reason why not as a ValueError.
    """
    if setting not in (True, False, "auto"):
        raise ValueError(f"prefix_sharing must be True, False or 'auto', got {setting!r}")
    if setting is False:
        return False
    if world_size > 1:
        if setting is True:
            raise ValueError("prefix_sharing=True is not supported under DistributedDataParallel "
                             "(the packed forward bypasses its gradient averaging); use 'auto'")
        return False
    if setting == "auto":
        try:
            check_prefix_sharing(model)
        except (TypeError, ValueError):
            return False
        return True
    check_prefix_sharing(model)
    return True


def _model_mask(mask: torch.Tensor, attention: str) -> torch.Tensor:
    """The 4D mask as the attention implementation reads it: bool for SDPA, additive for eager."""
    if attention == "eager":
        additive = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        return additive.masked_fill_(~mask, torch.finfo(torch.float32).min)
    return mask


def packed_rewards(model: Any, packed: PackedPairs) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen, rejected) rewards, float32 Tensor[B] each, of packed pairs; gradients flow.

    One forward of the decoder body over the packed rows, then the model's `score` head on the
    hidden state of each answer's last token.
    """
    check_prefix_sharing(model)
    if not isinstance(packed, PackedPairs):
        raise TypeError(f"packed must be PackedPairs (from pack_pairs), got {type(packed).__name__}")
    hf = model.hf
    n_vocab = hf.get_input_embeddings().num_embeddings
    ids = packed.input_ids
    if int(ids.min()) < 0 or int(ids.max()) >= n_vocab:
        raise ValueError(f"token ids must lie in [0, {n_vocab}) for this model's vocabulary, got "
                         f"{int(ids.min())}..{int(ids.max())}: were the texts encoded with another "
                         "tokenizer?")
    limit = model.position_limit
    if limit is not None and int(packed.position_ids.max()) >= limit:
        raise ValueError(f"positions up to {int(packed.position_ids.max())} exceed what this model "
                         f"can read ({limit} positions)")
    device = model.device
    body = getattr(hf, hf.base_model_prefix)
    out = body(input_ids=ids.to(device),
               attention_mask=_model_mask(packed.attention_mask.to(device),
                                          hf.config._attn_implementation),
               position_ids=packed.position_ids.to(device), use_cache=False)
    hidden = out.last_hidden_state
    rows = torch.arange(hidden.shape[0], device=device)
    chosen = hf.score(hidden[rows, packed.chosen_index.to(device)]).squeeze(-1).float()
    rejected = hf.score(hidden[rows, packed.rejected_index.to(device)]).squeeze(-1).float()
    return chosen, rejected


def unpad_rows(batch: dict[str, torch.Tensor]) -> list[list[int]]:
    """The real tokens of each row of a padded batch (either padding side), as id lists."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if ids.dim() != 2 or ids.shape != mask.shape:
        raise ValueError(f"input_ids {tuple(ids.shape)} and attention_mask {tuple(mask.shape)} "
                         "must both be [N, L]")
    return [row[m.bool()].tolist() for row, m in zip(ids, mask)]


def prefix_shared_stacked_rewards(model: Any, batch: dict[str, torch.Tensor],
                                  chunk_size: int | None = None) -> torch.Tensor:
    """Rewards [2B] of a `PairCollator` batch (B chosen rows, then B rejected), in that order,
    computed with each pair packed in one row: the drop-in replacement for the stacked forward.

    `chunk_size` counts rows of the stacked batch as the trainer's `forward_chunk_size` does:
    pairs are sorted by packed length and run chunk_size // 2 at a time (at least one), each
    chunk padded to its own longest row; None = all pairs in one forward.
    """
    if "token_type_ids" in batch:
        raise ValueError("token_type_ids belong to an encoder; prefix sharing is for decoders")
    rows = unpad_rows(batch)
    if len(rows) % 2:
        raise ValueError(f"a pair batch has 2B rows (chosen then rejected), got {len(rows)}")
    b = len(rows) // 2
    chosen_ids, rejected_ids = rows[:b], rows[b:]
    pad_id = int(model.tokenizer.pad_token_id)
    per_chunk = b if chunk_size is None else max(1, chunk_size // 2)
    lengths = [len(c) + len(r) - shared_prefix_length(c, r) for c, r in zip(chosen_ids, rejected_ids)]
    order = sorted(range(b), key=lambda i: -lengths[i])
    parts_c, parts_r, index = [], [], []
    for start in range(0, b, per_chunk):
        pick = order[start:start + per_chunk]
        packed = pack_pairs([chosen_ids[i] for i in pick], [rejected_ids[i] for i in pick], pad_id)
        c, r = packed_rewards(model, packed)
        parts_c.append(c)
        parts_r.append(r)
        index.extend(pick)
    back = torch.argsort(torch.tensor(index, device=model.device))
    chosen, rejected = torch.cat(parts_c)[back], torch.cat(parts_r)[back]
    return torch.cat([chosen, rejected])


def token_savings(chosen_ids: Sequence[Sequence[int]],
                  rejected_ids: Sequence[Sequence[int]]) -> dict[str, float]:
    """Real tokens computed unpacked (two rows per pair) and packed (one), and the share saved:
    the most packing can cut from the work (attention aside), before padding."""
    if len(chosen_ids) != len(rejected_ids) or not len(chosen_ids):
        raise ValueError("need as many chosen as rejected rows, at least one")
    separate = packed = 0
    for c, r in zip(chosen_ids, rejected_ids):
        s = shared_prefix_length(c, r)
        separate += len(c) + len(r)
        packed += len(c) + len(r) - s
    return {"tokens_separate": separate, "tokens_packed": packed,
            "saved_share": 1.0 - packed / separate}
