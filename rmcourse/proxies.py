"""The course's reward models as proxy rewards for a policy (chapters 09 and 09b).

A proxy is a `rmcourse.rl.ProxyReward`: a function (prompts, answers) -> scores with a cache.
Every proxy here is a reward model the course trains on preference pairs (never the gold):

* `head_proxy`: chapter 06's reward head on hashed word features, trained on world pairs.
* `ensemble_proxy`: several such heads (different seeds and bootstrap resamples of the pairs),
  combined as chapter 06 does (`rmcourse.ensembles.combine_rewards`: mean, worst case, or
  Coste et al. 2023's uncertainty-weighted mean - lam * variance).
* `odin_proxy`: chapter 08's ODIN quality head (the length head is trained, then dropped).
* `model_proxy`: any `rmcourse.models.RewardModel`, such as chapter 03's MiniLM checkpoint.

`pair_accuracy` states each proxy's pairwise accuracy on clean world test pairs, as the chapter
must before it optimises anything against it.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from rmcourse.ensembles import combine_rewards
from rmcourse.heads import hashed_features, pair_features, score_head, train_head
from rmcourse.rl import ProxyReward

__all__ = ["head_proxy", "ensemble_proxy", "odin_proxy", "model_proxy", "pair_accuracy"]


def _check_pairs(ds: Any) -> None:
    names = getattr(ds, "column_names", None)
    if names is None or not {"prompt", "chosen", "rejected"} <= set(names):
        raise TypeError("train must be a pair dataset with prompt, chosen and rejected columns "
                        "(e.g. PreferenceWorld.pairs('train', n))")


def head_proxy(train, *, epochs: int = 2, hidden: int = 64, seed: int = 0, name: str = "head") -> ProxyReward:
    """A reward head on hashed features trained on the pairs of ``train`` (chapter 06's recipe)."""
    _check_pairs(train)
    head = train_head(pair_features(train), hidden=hidden, epochs=epochs, seed=seed).head

    def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        return score_head(head, hashed_features(prompts, answers)).numpy()

    proxy = ProxyReward(score, name)
    proxy.model = head
    return proxy


def ensemble_proxy(train, n_members: int = 5, method: str = "mean", lam: float = 1.0, *, epochs: int = 2,
                   seed: int = 0, name: str | None = None) -> ProxyReward:
    """``n_members`` heads, each on its own bootstrap resample of the pairs with its own seed,
    combined by ``method`` ("mean", "worst" or "uncertainty" = mean - lam * variance)."""
    _check_pairs(train)
    if not isinstance(n_members, int) or n_members < 2:
        raise ValueError(f"n_members must be an int >= 2, got {n_members!r}")
    if method not in ("mean", "worst", "uncertainty"):
        raise ValueError(f"unknown method {method!r}; expected 'mean', 'worst' or 'uncertainty'")
    feats = pair_features(train)
    rng = np.random.default_rng(seed)
    heads = []
    for m in range(n_members):
        idx = rng.integers(0, len(feats), len(feats)).tolist()
        heads.append(train_head(feats.subset(idx), epochs=epochs, seed=seed + m).head)

    def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        x = hashed_features(prompts, answers)
        members = torch.stack([score_head(h, x) for h in heads])
        return combine_rewards(members, method, lam).numpy()

    proxy = ProxyReward(score, name or f"ensemble-{method}")
    proxy.members = heads
    return proxy


def odin_proxy(train, *, epochs: int = 2, seed: int = 0, name: str = "odin") -> ProxyReward:
    """ODIN's quality head (Chen et al. 2024) on hashed features, length = word count."""
    from rmcourse.odin import train_odin

    _check_pairs(train)
    feats = pair_features(train)
    run = train_odin(feats, [len(t.split()) for t in train["chosen"]],
                     [len(t.split()) for t in train["rejected"]], epochs=epochs, seed=seed)

    @torch.no_grad()
    def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        return run.model.quality(hashed_features(prompts, answers)).float().numpy()

    proxy = ProxyReward(score, name)
    proxy.model = run.model
    return proxy


def model_proxy(model: Any, name: str = "minilm", batch_size: int = 64) -> ProxyReward:
    """A `RewardModel` (e.g. chapter 03's `course_reward_model()`) as a proxy."""
    if not hasattr(model, "score"):
        raise TypeError(f"model must be an rmcourse RewardModel, got {type(model).__name__}")

    def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        return model.score(list(prompts), list(answers), batch_size=batch_size).numpy()

    return ProxyReward(score, name)


def pair_accuracy(proxy: ProxyReward, pairs) -> float:
    """Share of ``pairs`` (prompt, chosen, rejected) where the proxy scores chosen above rejected (ties wrong)."""
    prompts = list(pairs["prompt"])
    chosen = proxy(prompts, list(pairs["chosen"]))
    rejected = proxy(prompts, list(pairs["rejected"]))
    return float(np.mean(chosen > rejected))
