"""Pooling: which hidden state (one position's, or the mean of all) becomes the sequence's reward.

An encoder (BERT) reads the whole text in both directions, so every position, its first token
([CLS]) included, can see the response: pool the first real token, or the mean over the real
tokens (`mean_pool`). Which one suits a checkpoint depends on how it was pre-trained: original
BERT trained [CLS] (and its pooler) on next-sentence prediction; sentence-transformers'
all-MiniLM-L6-v2, the course's encoder, was trained with MEAN pooling (its
`1_Pooling/config.json` says `pooling_mode_mean_tokens: true`, `pooling_mode_cls_token: false`).
A decoder (Llama, SmolLM2) is causal: only the LAST real token has seen the prompt and the whole
response, so pool there. "Real" is decided by the
attention mask, never by comparing ids with the pad id: a pad id that equals the eos id (SmolLM2)
makes a text that ends in eos look padded (transformers issue #35352). Both functions work for
right padding (pads after the text) and left padding (pads before it), and so does `mean_pool`.
"""
from __future__ import annotations

import torch

__all__ = ["first_token_pool", "last_token_pool", "mean_pool", "first_token_index", "last_token_index"]


def _check(hidden: torch.Tensor | None, attention_mask: torch.Tensor) -> None:
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be 2-D [batch, seq], got shape {tuple(attention_mask.shape)}")
    if attention_mask.numel() and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0 and 1")
    empty = (attention_mask.sum(dim=1) == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"attention_mask has no real token in row {empty[0]}")
    if hidden is None:
        return
    if not isinstance(hidden, torch.Tensor):
        raise TypeError(f"hidden must be a torch.Tensor, got {type(hidden).__name__}")
    if hidden.dim() != 3:
        raise ValueError(f"hidden must be 3-D [batch, seq, dim], got shape {tuple(hidden.shape)}")
    if hidden.shape[:2] != attention_mask.shape:
        raise ValueError(
            f"hidden is [batch, seq] = {tuple(hidden.shape[:2])} but attention_mask is "
            f"{tuple(attention_mask.shape)}"
        )


def first_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the first real (mask 1) token in each row: 0 under right padding."""
    _check(None, attention_mask)
    # argmax returns the first maximum, i.e. the first 1
    return attention_mask.long().argmax(dim=1)


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position of the last real (mask 1) token in each row: L-1 under left padding."""
    _check(None, attention_mask)
    seq_len = attention_mask.shape[1]
    return seq_len - 1 - attention_mask.long().flip(dims=[1]).argmax(dim=1)


def first_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each row's first real token: [batch, seq, dim] -> [batch, dim] (encoders)."""
    _check(hidden, attention_mask)
    idx = first_token_index(attention_mask).to(hidden.device)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each row's last real token: [batch, seq, dim] -> [batch, dim] (decoders)."""
    _check(hidden, attention_mask)
    idx = last_token_index(attention_mask).to(hidden.device)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), idx]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row's REAL (mask 1) hidden states: [batch, seq, dim] -> [batch, dim] (encoders).

    Pads are left out of the sum and of the count, so a row's result does not depend on how much
    padding its batch added. Summed in float32 (a bf16 sum over a hundred positions loses
    digits) and returned in `hidden`'s dtype.
    """
    _check(hidden, attention_mask)
    weights = attention_mask.to(device=hidden.device, dtype=torch.float32).unsqueeze(-1)
    total = (hidden.float() * weights).sum(dim=1)
    return (total / weights.sum(dim=1)).to(hidden.dtype)
