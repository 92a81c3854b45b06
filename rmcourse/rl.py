"""Optimising a policy against a reward model: the KL-penalised reward, RLOO and PPO-clip (chapter 09).

The pieces, named as in TRL and the papers:

* `kl_penalised_rewards`: InstructGPT's per-token reward (Ouyang et al. 2022, arXiv 2203.02155;
  Stiennon et al. 2020): every token pays -beta * log(pi / pi_ref), the last token also gets the
  reward model's score. Summed over an answer: score - beta * k1.
* `kl_estimators`: per-answer sums of Schulman's k1 = log(pi / pi_ref) and
  k3 = (pi_ref / pi - 1) - log(pi_ref / pi) (http://joschu.net/blog/kl-approx.html). Both are
  unbiased for KL(pi || pi_ref) when the tokens are sampled from pi; k1 can be negative on one
  answer, k3 never is. `rmcourse.policy.exact_stats` gives the exact value to compare against.
* `rloo_advantages`: REINFORCE Leave-One-Out (Kool et al. 2019; Ahmadian et al. 2024, "Back to
  Basics", arXiv 2402.14740): k answers per prompt, each answer's baseline is the mean return of
  the other k - 1. Unbiased, needs no value network. `group_advantages` is GRPO's variant
  (Shao et al. 2024, arXiv 2402.03300): minus the group mean, divided by the group std.
* `ppo_clip_loss`: PPO's clipped surrogate (Schulman et al. 2017, arXiv 1707.06347) on the
  ratio pi_theta / pi_old of the policy being updated to the one that sampled.

`train_rl` puts them together as TRL's RLOO trainer does (KL inside the reward, RLOO
advantages of whole answers, PPO's clipped loss, which TRL notes is plain REINFORCE for one epoch
and one mini-batch; we take ``ppo_epochs`` steps on each batch, so the clip matters), and records at every
evaluation the exact KL and expected gold of the policy, the sampled proxy, and the k1/k3
estimates. Why RLOO rather than PPO with a value head: the reward model scores only whole answers
(RLOO treats an answer as one action with one return), k samples per prompt are cheap here, and Ahmadian et al. report
RLOO matching or beating PPO for RLHF with fewer moving parts; the PPO clip is kept because
several gradient epochs per batch make the update off-policy.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from rmcourse.device import one_thread
from rmcourse.policy import (AnswerPolicy, Rollout, answer_gold, exact_stats, fit_sft, render, sample,
                             sequence_logprobs)

__all__ = ["kl_penalised_rewards", "kl_estimators", "rloo_advantages", "group_advantages",
           "ppo_clip_loss", "ProxyReward", "RLRun", "train_rl", "best_of_n_pool", "rejection_sampling"]

ProxyFn = Callable[[Sequence[str], Sequence[str]], np.ndarray]


def _check_tokens(name: str, x: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be [answers, tokens], got shape {tuple(x.shape)}")
    if like is not None and x.shape != like.shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(like.shape)}")
    return x


def kl_penalised_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-token rewards [N, T]: -beta * (log pi - log pi_ref) on every valid token, plus the
    reward model's score on each answer's last valid token (0 on padding)."""
    _check_tokens("logprobs", logprobs)
    _check_tokens("ref_logprobs", ref_logprobs, logprobs)
    _check_tokens("mask", mask, logprobs)
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor of one score per answer, got {type(scores).__name__}")
    if scores.shape != (logprobs.shape[0],):
        raise ValueError(f"scores must have one value per answer ({logprobs.shape[0]}), got {tuple(scores.shape)}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    mask = mask.bool()
    if not mask.any(1).all():
        raise ValueError("every answer needs at least one valid token")
    rewards = torch.where(mask, -beta * (logprobs - ref_logprobs), torch.zeros_like(logprobs))
    last = mask.long().cumsum(1).argmax(1)  # index of the last valid token
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards


def kl_estimators(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-answer KL estimates [N]: k1 = sum log(pi/pi_ref), k3 = sum (pi_ref/pi - 1) - log(pi_ref/pi)."""
    _check_tokens("logprobs", logprobs)
    _check_tokens("ref_logprobs", ref_logprobs, logprobs)
    mask = _check_tokens("mask", mask, logprobs).bool()
    log_ratio = torch.where(mask, ref_logprobs - logprobs, torch.zeros_like(logprobs))
    k1 = -log_ratio.sum(1)
    k3 = torch.where(mask, log_ratio.exp() - 1.0 - log_ratio, torch.zeros_like(logprobs)).sum(1)
    return {"k1": k1, "k3": k3}


def _groups(returns: torch.Tensor) -> torch.Tensor:
    if not isinstance(returns, torch.Tensor) or returns.ndim != 2:
        raise ValueError("returns must be a [prompts, k] tensor: k answers of each prompt in a row")
    if returns.shape[1] < 2:
        raise ValueError(f"a group baseline needs k >= 2 answers per prompt, got k = {returns.shape[1]}")
    return returns


def rloo_advantages(returns: torch.Tensor) -> torch.Tensor:
    """[P, k]: each answer's return minus the mean return of the other k - 1 answers of its prompt."""
    r = _groups(returns)
    k = r.shape[1]
    return r - (r.sum(1, keepdim=True) - r) / (k - 1)


def group_advantages(returns: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's [P, k]: (return - group mean) / (group std + eps), std with the 1/k normaliser."""
    r = _groups(returns)
    return (r - r.mean(1, keepdim=True)) / (r.std(1, unbiased=False, keepdim=True) + eps)


def ppo_clip_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, clip: float = 0.2) -> torch.Tensor:
    """Mean over valid tokens of -min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A),
    ratio = exp(log pi_theta - log pi_old), A the answer's advantage [N] broadcast to its tokens."""
    _check_tokens("logprobs", logprobs)
    _check_tokens("old_logprobs", old_logprobs, logprobs)
    mask = _check_tokens("mask", mask, logprobs).bool()
    if advantages.shape != (logprobs.shape[0],):
        raise ValueError(f"advantages must have one value per answer ({logprobs.shape[0]})")
    if not 0 < clip < 1:
        raise ValueError(f"clip must be in (0, 1), got {clip}")
    ratio = torch.exp(logprobs - old_logprobs.detach())
    adv = advantages.detach()[:, None]
    surrogate = torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    return -torch.where(mask, surrogate, torch.zeros_like(surrogate)).sum() / mask.sum()


class ProxyReward:
    """A reward model as a function of (prompts, answers) -> scores, with a cache: the policy
    writes the same answer many times, and a reward model's score of a text never changes."""

    def __init__(self, fn: ProxyFn, name: str = "proxy") -> None:
        self.fn, self.name = fn, name
        self.cache: dict[tuple[str, str], float] = {}
        self.calls = 0

    def __call__(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        keys = list(zip(prompts, answers))
        new = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if new:
            scores = np.asarray(self.fn([p for p, _ in new], [a for _, a in new]), dtype=float)
            if scores.shape != (len(new),):
                raise ValueError(f"the reward function returned shape {scores.shape} for {len(new)} answers")
            self.cache.update(zip(new, scores.tolist()))
            self.calls += len(new)
        return np.array([self.cache[k] for k in keys])


def _texts(prompts: Sequence[Mapping], rollout: Rollout) -> tuple[list[str], list[str]]:
    idx = rollout.prompt_index.tolist()
    answers = [render(prompts[i], seq) for i, seq in zip(idx, rollout.action_lists())]
    return [prompts[i]["text"] for i in idx], answers


@dataclass
class RLRun:
    """A trained policy, one history row per evaluation, the first evaluation prompt's sampled
    answers at each evaluation ({"answer", "gold", "proxy"} dicts) and the exact per-prompt gold
    and KL at each evaluation (``per_prompt[step]["gold"]``, arrays over the evaluation prompts)."""

    policy: AnswerPolicy
    history: pd.DataFrame
    samples: dict[int, list[dict]] = field(default_factory=dict)
    per_prompt: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)


def _evaluate(policy, ref, eval_feats, eval_prompts, proxy, gen, k_eval) -> tuple[dict, list[dict], dict]:
    """One history row, the first prompt's sampled answers, and per-prompt exact gold and KL."""
    exact = exact_stats(policy, eval_feats, ref)
    roll = sample(policy, eval_feats, k_eval, gen)
    with torch.no_grad():
        ref_lp = sequence_logprobs(ref, eval_feats, roll)
    est = kl_estimators(roll.logprobs, ref_lp, roll.mask)
    prompts, answers = _texts(eval_prompts, roll)
    scores = proxy(prompts, answers)
    gold = answer_gold(roll.final)
    row = {"kl": float(exact["kl"].mean()), "gold": float(exact["gold"].mean()),
           "proxy": float(scores.mean()), "gold_sampled": float(gold.mean()),
           "k1": float(est["k1"].mean()), "k3": float(est["k3"].mean()),
           "k1_std": float(est["k1"].std()), "k3_std": float(est["k3"].std()), "n_sampled": len(roll),
           **{name: float(exact[name].mean()) for name in ("detail", "filler", "right", "polite", "sentences")}}
    row["d"] = float(np.sqrt(max(row["kl"], 0.0)))
    first = [{"answer": a, "gold": float(g), "proxy": float(s)}
             for a, g, s in zip(answers[:k_eval], gold[:k_eval], scores[:k_eval])]
    per_prompt = {"gold": exact["gold"].numpy(), "kl": exact["kl"].numpy()}
    return row, first, per_prompt


@one_thread
def train_rl(ref: AnswerPolicy, prompts: Sequence[Mapping], proxy: ProxyFn, *, beta: float = 0.05,
             steps: int = 60, prompts_per_step: int = 16, k: int = 4, lr: float = 3e-3,
             ppo_epochs: int = 2, clip: float = 0.2, eval_prompts: Sequence[Mapping] | None = None,
             eval_every: int = 5, k_eval: int = 4, whiten: bool = False, reward_clip: float | None = None,
             seed: int = 0, init: AnswerPolicy | None = None, progress: bool = False) -> RLRun:
    """RLOO with the KL-penalised reward and PPO-clip updates, starting from a copy of ``ref``
    (or of ``init``, e.g. the policy of an earlier round; the KL is always to ``ref``).

    Each step draws ``prompts_per_step`` prompts, samples ``k`` answers per prompt, scores them
    with ``proxy`` (never the gold), forms returns score - beta * k1, RLOO advantages, and takes
    ``ppo_epochs`` Adam steps on the clipped surrogate. ``whiten`` standardises the proxy's
    scores with running statistics before the KL term (Llama 2 whitens its reward);
    ``reward_clip`` then clamps them to [-reward_clip, reward_clip]. History
    columns: step, kl (exact), d = sqrt(kl), gold (exact expected), proxy and gold_sampled (means
    over the ``k_eval`` answers sampled per evaluation prompt), k1, k3 (sampled means) and their
    standard deviations, n_sampled, and the exact expected detail, filler, right, polite and sentences.
    """
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"RLOO needs k >= 2 answers per prompt, got {k!r}")
    if reward_clip is not None and not reward_clip > 0:
        raise ValueError(f"reward_clip must be > 0 or None, got {reward_clip!r}")
    if not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be a positive int, got {eval_every!r}")
    from rmcourse.policy import prompt_features

    policy = copy.deepcopy(ref if init is None else init).train()
    ref = copy.deepcopy(ref).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    proxy = proxy if isinstance(proxy, ProxyReward) else ProxyReward(proxy)
    feats = prompt_features(prompts)
    eval_prompts = list(eval_prompts) if eval_prompts is not None else list(prompts[:32])
    eval_feats = prompt_features(eval_prompts)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(seed + 10_000)
    rows, samples, per_prompt = [], {}, {}
    running = [0.0, 1.0, 0]  # mean, var, count of proxy scores (for whitening)
    bar = range(steps + 1)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=f"RL beta={beta}", leave=False)
    for step in bar:
        if step % eval_every == 0 or step == steps:
            row, answers, per_prompt[step] = _evaluate(policy, ref, eval_feats, eval_prompts, proxy, eval_gen, k_eval)
            rows.append({"step": step, **row})
            samples[step] = answers
        if step == steps:
            break
        idx = torch.randperm(len(prompts), generator=gen)[:prompts_per_step]
        roll = sample(policy, feats[idx], k, gen)
        texts = _texts([prompts[i] for i in idx.tolist()], roll)
        scores = torch.tensor(proxy(*texts), dtype=torch.float32)
        if whiten:
            n_old, n_new = running[2], len(scores)
            mean = (running[0] * n_old + float(scores.sum())) / (n_old + n_new)
            # pooled variance: the old batches' spread about the NEW mean includes their mean shift
            var = (n_old * (running[1] + (running[0] - mean) ** 2)
                   + float(((scores - mean) ** 2).sum())) / (n_old + n_new)
            running = [mean, var, n_old + n_new]
            scores = (scores - mean) / max(var, 1e-8) ** 0.5
        if reward_clip is not None:
            scores = scores.clamp(-reward_clip, reward_clip)
        with torch.no_grad():
            ref_lp = sequence_logprobs(ref, feats[idx], roll)
        returns = kl_penalised_rewards(scores, roll.logprobs, ref_lp, roll.mask, beta).sum(1)
        adv = rloo_advantages(returns.view(-1, k)).flatten()
        for _ in range(ppo_epochs):
            logp = sequence_logprobs(policy, feats[idx], roll)
            loss = ppo_clip_loss(logp, roll.logprobs, adv, roll.mask, clip)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return RLRun(policy, pd.DataFrame(rows), samples, per_prompt)


@one_thread
def best_of_n_pool(policy: AnswerPolicy, prompts: Sequence[Mapping], proxy: ProxyFn, pool_size: int = 64,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """``pool_size`` answers per prompt from ``policy``: proxy and gold [P, K] and the answers' attributes."""
    from rmcourse.policy import prompt_features

    gen = torch.Generator().manual_seed(seed)
    feats = prompt_features(prompts)
    roll = sample(policy, feats, pool_size, gen)
    texts = _texts(prompts, roll)
    shape = (len(prompts), pool_size)
    fs = roll.final
    return {"proxy": np.asarray(proxy(*texts)).reshape(shape), "gold": answer_gold(fs).numpy().reshape(shape),
            "detail": fs[:, 2].numpy().reshape(shape), "filler": fs[:, 3].numpy().reshape(shape),
            "right": (fs[:, 1] == 1).numpy().reshape(shape)}


@one_thread
def rejection_sampling(ref: AnswerPolicy, prompts: Sequence[Mapping], proxy: ProxyFn, *, rounds: int = 4,
                       n: int = 8, epochs: int = 10, lr: float = 3e-3, eval_prompts: Sequence[Mapping] | None = None,
                       k_eval: int = 4, seed: int = 0) -> RLRun:
    """Rejection-sampling fine-tuning (Llama 2, RAFT): each round samples ``n`` answers per prompt
    from the current policy, keeps the one the proxy likes best, and fits the policy to the kept
    answers by maximum likelihood. History row 0 is the start (``ref``), then one row per round."""
    from rmcourse.policy import prompt_features

    policy = copy.deepcopy(ref)
    ref = copy.deepcopy(ref).eval()
    proxy = proxy if isinstance(proxy, ProxyReward) else ProxyReward(proxy)
    feats = prompt_features(prompts)
    eval_prompts = list(eval_prompts) if eval_prompts is not None else list(prompts[:32])
    eval_feats = prompt_features(eval_prompts)
    gen = torch.Generator().manual_seed(seed)
    eval_gen = torch.Generator().manual_seed(seed + 10_000)
    rows, samples, per_prompt = [], {}, {}
    for r in range(rounds + 1):
        row, answers, per_prompt[r] = _evaluate(policy, ref, eval_feats, eval_prompts, proxy, eval_gen, k_eval)
        rows.append({"step": r, **row})
        samples[r] = answers
        if r == rounds:
            break
        roll = sample(policy, feats, n, gen)
        scores = proxy(*_texts(prompts, roll)).reshape(len(prompts), n)
        best = scores.argmax(1) + np.arange(len(prompts)) * n
        seqs = roll.action_lists()
        seqs = [seqs[i] for i in best]
        fit_sft(policy, feats, seqs, epochs=epochs, lr=lr, seed=seed + r)
    return RLRun(policy, pd.DataFrame(rows), samples, per_prompt)
