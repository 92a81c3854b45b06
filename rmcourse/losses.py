"""The reward model's pairwise loss: Bradley-Terry's negative log-likelihood on reward pairs.

    loss = -log sigmoid(r_chosen - r_rejected - margin)  [+ center_coef * mean((r_c + r_r)^2)]

This is what TRL's RewardTrainer computes (`margin` column, `center_rewards_coefficient`). The
margin follows Llama 2 (Touvron et al. 2023, arXiv 2307.09288): a pair rated "much better" must be
won by at least m. Reward centering (Eisenstein et al. 2023, arXiv 2312.09244) adds
c * mean((r_c + r_r)^2) = 4c * mean(midpoint^2), midpoint = (r_c + r_r) / 2. The pairwise term
only sees differences, so a shift of every reward by one constant is free and the level would
drift; the centering term removes that freedom, but it does more than pin the mean: since
mean(midpoint^2) = mean(midpoint)^2 + var(midpoint), it also penalises the spread of the pairs'
midpoints. That shrinks the reward scale and competes with the pairwise term, so it can change
which response the model ranks higher (chapter 06 measures it). Validate the coefficient.

`kwise_loss` is InstructGPT's loss for K ranked responses per prompt (Ouyang et al. 2022,
arXiv 2203.02155): every one of the C(K, 2) pairs of a prompt, each weighted 1 / C(K, 2), so each
prompt counts once however many responses it has.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = ["pairwise_loss", "bce_form_loss", "reward_centering_loss", "kwise_loss"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_pair(chosen: Any, rejected: Any) -> tuple[torch.Tensor, torch.Tensor]:
    for name, value in (("chosen_rewards", chosen), ("rejected_rewards", rejected)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen_rewards and rejected_rewards must have the same shape, got "
            f"{tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    if chosen.ndim != 1:
        hint = " (a [B, 1] head output needs .squeeze(-1))" if chosen.ndim == 2 else ""
        raise ValueError(
            f"rewards must be 1-D, one scalar per pair, got shape {tuple(chosen.shape)}{hint}"
        )
    if chosen.numel() == 0:
        raise ValueError("rewards are empty: need at least one pair")
    if chosen.device != rejected.device:
        raise ValueError(f"rewards are on different devices: {chosen.device} and {rejected.device}")
    # bf16/fp16 rewards (autocast) lose precision in logsigmoid: compute the loss in at least fp32.
    return _at_least_fp32(chosen), _at_least_fp32(rejected)


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _check_margin(margin: Any, like: torch.Tensor) -> torch.Tensor | float:
    if margin is None:
        return 0.0
    if isinstance(margin, bool):
        raise TypeError("margin must be a number or a tensor, got bool")
    if isinstance(margin, (int, float)):
        if not math.isfinite(margin):
            raise ValueError(f"margin must be finite, got {margin}")
        return float(margin)
    if not isinstance(margin, torch.Tensor):
        raise TypeError(f"margin must be None, a number or a tensor, got {type(margin).__name__}")
    if margin.ndim == 0:
        return margin.to(like.device, torch.float32)
    if margin.shape != like.shape:
        raise ValueError(
            f"margin must have one value per pair, shape {tuple(like.shape)}, "
            f"got {tuple(margin.shape)}"
        )
    return margin.to(like.device, torch.float32)


def _check_reduction(reduction: Any) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {_REDUCTIONS}")
    return reduction


def _check_coef(coef: Any) -> None:
    if isinstance(coef, bool) or not isinstance(coef, (int, float)):
        raise TypeError(f"center_coef must be a number, got {type(coef).__name__}")
    if not (coef >= 0 and math.isfinite(coef)):
        raise ValueError(f"center_coef must be a finite number >= 0, got {coef}")


def reward_centering_loss(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor, coef: float
) -> torch.Tensor:
    """Eisenstein et al.'s auxiliary term coef * mean((r_c + r_r)^2) (TRL: center_rewards_coefficient).

    Equal to 4 * coef * mean(midpoint^2): it pulls every pair's midpoint toward 0, so it penalises
    the midpoints' spread as well as their mean (see the module docstring).
    """
    chosen, rejected = _check_pair(chosen_rewards, rejected_rewards)
    _check_coef(coef)
    return coef * torch.mean((chosen + rejected) ** 2)


def pairwise_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    center_coef: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Bradley-Terry pairwise loss -log sigmoid(r_c - r_r - margin), plus optional centering.

    `reduction="mean"` (TRL's choice) adds center_coef * mean((r_c + r_r)^2); "sum" adds
    center_coef * sum((r_c + r_r)^2) so that sum = n * mean; "none" returns the per-pair loss
    WITHOUT the centering term (add `reward_centering_loss` yourself if you weight pairs).
    logsigmoid is used rather than log(sigmoid(.)), which underflows to log(0) = -inf once the
    gap is below about -104 in float32.

    Python-number margins and coefficients are checked (NaN refused); the values inside tensors
    are not scanned, because that would stop a GPU every step to read a flag. Data margins are
    checked once, when `rmcourse.tokenization.PairCollator` builds the batch.
    """
    chosen, rejected = _check_pair(chosen_rewards, rejected_rewards)
    m = _check_margin(margin, chosen)
    reduction = _check_reduction(reduction)
    _check_coef(center_coef)
    per_pair = -F.logsigmoid(chosen - rejected - m)
    if reduction == "none":
        return per_pair
    center = (chosen + rejected) ** 2
    if reduction == "mean":
        loss = per_pair.mean()
        return loss + center_coef * center.mean() if center_coef else loss
    loss = per_pair.sum()
    return loss + center_coef * center.sum() if center_coef else loss


def bce_form_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The learning document's form: BCEWithLogits(r_c - r_r - margin, labels=all ones).

    With label 1, BCE(z, 1) = -log sigmoid(z), so this equals `pairwise_loss` exactly; it only
    allocates a tensor of ones to say so. Kept to show the equality (errata 5).
    """
    chosen, rejected = _check_pair(chosen_rewards, rejected_rewards)
    m = _check_margin(margin, chosen)
    reduction = _check_reduction(reduction)
    logits = chosen - rejected - m
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction=reduction)


def kwise_loss(rewards: Sequence[torch.Tensor], scores: Sequence[Any]) -> torch.Tensor:
    """InstructGPT's K-wise loss over a batch of prompts, each with its own K ranked responses.

    `rewards[g]` is a 1-D tensor of the K_g responses' rewards for prompt g, `scores[g]` their
    preference scores (higher = preferred; a ranking's positions reversed work too). Per prompt,
    the loss is the mean of -log sigmoid(r_better - r_worse) over its C(K_g, 2) pairs (equal
    scores make no pair); the batch loss is the mean over prompts. So each prompt counts once,
    and each response is scored once however many pairs it is in. A prompt with no strict pair
    contributes nothing; a batch without any strict pair is an error.
    """
    if isinstance(rewards, torch.Tensor) or not isinstance(rewards, Sequence):
        raise TypeError("rewards must be a list of 1-D tensors, one per prompt")
    if isinstance(scores, (str, bytes)) or not isinstance(scores, Sequence):
        raise TypeError("scores must be a list of 1-D score sequences, one per prompt")
    if len(rewards) != len(scores):
        raise ValueError(f"{len(rewards)} reward tensors but {len(scores)} score lists")
    if len(rewards) == 0:
        raise ValueError("no prompts: rewards is empty")
    per_prompt = []
    for g, (r, s) in enumerate(zip(rewards, scores)):
        if not isinstance(r, torch.Tensor) or not r.is_floating_point() or r.ndim != 1:
            raise TypeError(f"rewards[{g}] must be a 1-D floating-point tensor")
        s = torch.as_tensor(s, dtype=torch.float64, device=r.device)
        if s.shape != r.shape:
            raise ValueError(f"prompt {g}: {r.shape[0]} rewards but {s.numel()} scores")
        if not torch.isfinite(s).all():
            raise ValueError(f"prompt {g}: scores must be finite")
        i, j = torch.triu_indices(len(s), len(s), offset=1, device=r.device)
        keep = s[i] != s[j]
        i, j = i[keep], j[keep]
        if len(i) == 0:
            continue
        better = torch.where(s[i] > s[j], i, j)
        worse = torch.where(s[i] > s[j], j, i)
        r = _at_least_fp32(r)
        per_prompt.append(-F.logsigmoid(r[better] - r[worse]).mean())  # the 1 / C(K, 2) weighting
    if not per_prompt:
        raise ValueError("no prompt has two responses with different scores: nothing to compare")
    return torch.stack(per_prompt).mean()
