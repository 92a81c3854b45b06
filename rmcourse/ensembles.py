"""Reward-model ensembles: combine members' rewards, and weight pairs by their disagreement.

Coste et al. 2023 ("Reward Model Ensembles Help Mitigate Overoptimization", arXiv 2310.02743)
train several reward models that differ only in their seed and combine them by
* mean: the average reward;
* worst-case (WCO): the minimum over members, pessimistic where members disagree;
* uncertainty-weighted (UWO): mean - lambda * variance across members.
Every member must really be trained (the seed note created members but never gave them to the
optimizer nor moved them to the device, so they stayed random).

Coste et al. find the conservative combinations (worst case, uncertainty-weighted) mitigate
over-optimisation; the plain mean can still over-optimise: averaging does not remove an error
the members share.

`uncertainty_weighted_pair_loss` down-weights pairs the members disagree on. The seed note's
version had two bugs. (1) It took BCE with mean reduction (already a scalar), multiplied it by
the weight vector and averaged: that is the plain loss times mean(weights), a rescaled learning
rate, with every pair weighted the same. (2) Its weights w = 1 / (1 + Var) were not detached.
The loss is w * l with l > 0, so d loss / d Var = -l / (1 + Var)^2 < 0: gradient descent RAISES
the members' variance. The members learn to disagree, every weight and so the loss shrink, and
nothing about the preferences is learned from that part of the gradient. Detached weights are
constants that only say how much each pair counts. `seed_uncertainty_loss` keeps the seed form
for the pitfall demo; `detach_weights=False` reproduces bug (2) alone.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rmcourse.validation import as_number

__all__ = ["combine_rewards", "member_variance", "uncertainty_weights",
           "uncertainty_weighted_pair_loss", "seed_uncertainty_loss"]

_METHODS = ("mean", "worst", "uncertainty")


def _members(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [members, items], got {type(x).__name__}")
    if x.dtype == torch.bool or not (x.is_floating_point()):
        raise TypeError(f"{name} must hold floating-point rewards, got a {x.dtype} tensor "
                        "(call .float() on it)")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape [members, items], got {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} has a non-finite value")
    return x


def member_variance(member_rewards: torch.Tensor) -> torch.Tensor:
    """Variance across members per item (population variance: divides by M; 0 for one member)."""
    x = _members(member_rewards, "member_rewards")
    return x.var(dim=0, unbiased=False)


def combine_rewards(member_rewards: torch.Tensor, method: str = "mean", lam: float = 1.0) -> torch.Tensor:
    """Combine rewards of shape [M members, N items] into [N]: mean, worst (min) or uncertainty.

    "uncertainty" is mean - lam * variance (Coste et al.'s UWO; variance across members).
    """
    x = _members(member_rewards, "member_rewards")
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {_METHODS}")
    if method == "mean":
        return x.mean(dim=0)
    if method == "worst":
        return x.min(dim=0).values
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise TypeError(f"lam must be a number >= 0, got {type(lam).__name__} {lam!r}")
    as_number(lam, "lam")  # NaN and inf refused: they turn every combined reward into NaN / -inf
    if lam < 0:
        raise ValueError(f"lam must be a non-negative number, got {lam!r}")
    return x.mean(dim=0) - lam * member_variance(x)


def _pair_shapes(member_chosen: torch.Tensor, member_rejected: torch.Tensor) -> None:
    _members(member_chosen, "member_chosen")
    _members(member_rejected, "member_rejected")
    if member_chosen.shape != member_rejected.shape:
        raise ValueError(f"member_chosen and member_rejected differ in shape: "
                         f"{tuple(member_chosen.shape)} vs {tuple(member_rejected.shape)}")


def uncertainty_weights(member_chosen: torch.Tensor, member_rejected: torch.Tensor,
                        detach: bool = True) -> torch.Tensor:
    """Per-pair weights 1 / (1 + var_chosen + var_rejected), detached (a constant for autograd).

    `detach=False` keeps them in the graph: only for showing why that is wrong (module docstring).
    """
    _pair_shapes(member_chosen, member_rejected)
    if not isinstance(detach, bool):
        raise TypeError(f"detach must be True or False, got {detach!r}")
    var = member_variance(member_chosen) + member_variance(member_rejected)
    weights = 1.0 / (1.0 + var)
    return weights.detach() if detach else weights


def uncertainty_weighted_pair_loss(member_chosen: torch.Tensor, member_rejected: torch.Tensor,
                                   reduction: str = "mean", detach_weights: bool = True) -> torch.Tensor:
    """Pairwise loss on the ensemble-mean rewards, each pair weighted by its detached weight.

    per pair: w_i * -logsigmoid(mean_c_i - mean_r_i), w_i = 1 / (1 + var_c_i + var_r_i).
    `reduction="none"` returns the weighted per-pair losses, "mean" their mean, "sum" their sum.
    Weights are detached: otherwise the cheapest way down the loss is to make the members
    DISAGREE (a larger variance shrinks every weight), and gradient descent takes it.
    `detach_weights=False` is that mistake, kept for the demonstration.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"unknown reduction {reduction!r}; expected 'mean', 'sum' or 'none'")
    weights = uncertainty_weights(member_chosen, member_rejected, detach=detach_weights)
    per_pair = -F.logsigmoid(member_chosen.mean(dim=0) - member_rejected.mean(dim=0))
    weighted = weights * per_pair
    if reduction == "none":
        return weighted
    return weighted.sum() if reduction == "sum" else weighted.mean()


def seed_uncertainty_loss(member_chosen: torch.Tensor, member_rejected: torch.Tensor) -> torch.Tensor:
    """The seed note's form, bug kept for the demo: scalar BCE * undetached weights, averaged.

    Equal to mean(weights) * plain loss: every pair gets the same weight, and the undetached
    weights let the members lower the loss by disagreeing. Do not use.
    """
    _pair_shapes(member_chosen, member_rejected)
    chosen_var = member_chosen.var(0)
    rejected_var = member_rejected.var(0)
    weights = 1.0 / (1.0 + chosen_var + rejected_var)
    logits = member_chosen.mean(0) - member_rejected.mean(0)
    loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))  # already a scalar
    return (loss * weights).mean()
