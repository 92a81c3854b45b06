"""Does anything stop a policy from hacking a learned reward model? Helpers for chapter 09b.

Chapter 09 trains `rmcourse.policy.AnswerPolicy` against a learned proxy with
`rmcourse.rl.train_rl` and reads every evaluation against the exact gold reward. Chapter 09b
asks whether a KL penalty or a mitigation changes what that optimisation ends with, and has to
answer with seeds and intervals. This module holds what the chapter needs beyond `train_rl`:

* **Reading runs.** `run_summary` turns one run's history into the numbers the chapter reports
  (peak gold, the KL at the peak, gold and KL at the end); `seed_interval` and
  `paired_seed_interval` give a mean with a Student-t interval over seeds (paired: the per-seed
  difference of two methods run with the same seed, prompts and reference).
* **Gao et al.'s frontier test.** `gold_at_kl` reads a run's gold where it first reaches a given
  KL (linear in d = sqrt(KL) between evaluations): what early stopping at that KL would have
  given. `frontier_gap` compares a KL-penalised run's end with that.
* **Proxies.** `budget_prices` reads what a proxy pays for detail and for filler when the body
  budget is full (the mechanism of the hack); `recombine_ensemble` scores with the members of an
  `ensemble_proxy` under another combination rule (worst case, uncertainty-weighted) without
  training them again; `reusing_head_proxy` is `head_proxy` for pair sets that extend a fixed
  base set, hashing the base pairs once.
* **Iterated RLHF.** `vote_labels` simulates the world's annotators (one random annotator's
  Bradley-Terry vote on the gold reward, as `PreferenceWorld.pairs` labels training pairs);
  `on_policy_pairs` pairs the policy's answers with the reference policy's answers to the same
  prompts and labels them; `iterated_rlhf` alternates RL rounds with retraining the proxy on the
  original pairs plus every round's new pairs, continuing RL from the current policy with the
  KL always to the SFT reference (Bai et al. 2022's iterated online RLHF; Llama 2's reward
  model refreshed on samples of the latest policy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import t as student_t

from rmcourse.bootstrap import Interval
from rmcourse.ensembles import combine_rewards, member_variance
from rmcourse.heads import hashed_features, score_head
from rmcourse.policy import AnswerPolicy, answer_gold, prompt_features, render, sample
from rmcourse.rl import ProxyReward, train_rl

__all__ = ["seed_interval", "paired_seed_interval", "run_summary", "gold_at_kl", "frontier_gap", "budget_prices",
           "recombine_ensemble", "reusing_head_proxy", "vote_labels", "on_policy_pairs", "pair_dataset", "IteratedRun",
           "iterated_rlhf"]


# ------------------------------------------------------------------ intervals over seeds
def _finite(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"{name} needs at least 2 seeds for an interval, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite value: {arr.tolist()}")
    return arr


def seed_interval(values: Any, level: float = 0.95) -> Interval:
    """Mean over seeds with a Student-t interval: mean +- t_{n-1} * sd / sqrt(n).

    With three seeds t_2 = 4.30 at 95%, so the interval is wide: that is the honest price of
    three runs, and an interval that straddles 0 means "we cannot tell"."""
    if not 0.5 < level < 1.0:
        raise ValueError(f"level must be in (0.5, 1), got {level}")
    v = _finite(values, "values")
    half = float(student_t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    mean = float(v.mean())
    return Interval(mean, mean - half, mean + half, level)


def paired_seed_interval(a: Any, b: Any, level: float = 0.95) -> Interval:
    """Mean of a - b over seeds with a Student-t interval; a[i] and b[i] must share seed i."""
    x, y = _finite(a, "a"), _finite(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must hold one value per seed each: {x.size} vs {y.size}")
    return seed_interval(x - y, level)


# ------------------------------------------------------------------ reading one run
def _history(history: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(history, pd.DataFrame) or not {"kl", "gold"} <= set(history.columns):
        raise TypeError("history must be a train_rl history DataFrame with kl and gold columns")
    if len(history) < 2:
        raise ValueError("a history needs at least two evaluations")
    return history.reset_index(drop=True)


def run_summary(history: pd.DataFrame, n_end: int = 3) -> dict[str, float]:
    """Peak gold (the best evaluation; with its KL, d and step) and the end of a run.

    The end is the mean over the last ``n_end`` evaluations: a policy that has stopped
    improving still moves from batch to batch, and one evaluation of it swings with that."""
    h = _history(history)
    if not isinstance(n_end, int) or not 1 <= n_end <= len(h):
        raise ValueError(f"n_end must be an int in 1..{len(h)}, got {n_end!r}")
    peak = int(h["gold"].idxmax())
    end = h.iloc[-n_end:]
    out = {"peak_gold": float(h.loc[peak, "gold"]), "peak_kl": float(h.loc[peak, "kl"]),
           "peak_d": float(np.sqrt(max(h.loc[peak, "kl"], 0.0))),
           "end_gold": float(end["gold"].mean()), "end_kl": float(end["kl"].mean())}
    if "step" in h:
        out["peak_step"] = float(h.loc[peak, "step"])
    for col in ("detail", "filler"):
        if col in h:
            out[f"end_{col}"] = float(end[col].mean())
    return out


def gold_at_kl(history: pd.DataFrame, kl: float) -> float:
    """The run's gold where it FIRST reaches ``kl``: linear in d = sqrt(KL) between the two
    evaluations around that point (early stopping at that KL). NaN if the run never gets there."""
    h = _history(history)
    if not (isinstance(kl, (int, float, np.floating)) and math.isfinite(kl) and kl >= 0):
        raise ValueError(f"kl must be a finite number >= 0, got {kl!r}")
    d = np.sqrt(np.clip(h["kl"].to_numpy(float), 0.0, None))
    gold = h["gold"].to_numpy(float)
    target = math.sqrt(kl)
    if target <= d[0]:
        return float(gold[0])
    above = np.nonzero(d >= target)[0]
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    w = (target - d[i - 1]) / (d[i] - d[i - 1])
    return float(gold[i - 1] + w * (gold[i] - gold[i - 1]))


def frontier_gap(history: pd.DataFrame, reference: pd.DataFrame, n_end: int = 3) -> float:
    """Mean over the last ``n_end`` evaluations of ``history`` of gold minus the gold
    ``reference`` (a beta = 0 run) had when it first reached the same KL. Positive: the run ends
    above the reference's gold-vs-KL curve; 0: it only stopped earlier on the same curve. NaN
    if the reference never reached one of those KLs."""
    h = _history(history)
    if not isinstance(n_end, int) or not 1 <= n_end <= len(h):
        raise ValueError(f"n_end must be an int in 1..{len(h)}, got {n_end!r}")
    end = h.iloc[-n_end:]
    gaps = [g - gold_at_kl(reference, float(max(k, 0.0))) for g, k in zip(end["gold"], end["kl"])]
    return float(np.mean(gaps))


# ------------------------------------------------------------------ proxies
def budget_prices(proxy: ProxyReward, prompts: Sequence[Mapping]) -> pd.DataFrame:
    """What a proxy pays for spending the body budget on detail or on filler.

    Every answer here is the right claim, ``d`` details and ``BODY_BUDGET - 1 - d`` fillers
    (a full body), for d = 0..MAX_DETAIL, no style sentence. Gold grows by 1 per detail
    (filler has weight 0); a proxy whose mean score FALLS with d pays more per filler than per
    detail, and a policy optimised against it fills the budget with filler. Rows d; columns
    filler, gold, proxy (mean over ``prompts``) and proxy_sd (its spread over prompts); for an
    ensemble (a proxy with ``.members``) also member_var, the members' mean disagreement
    (variance across members, the term Coste et al.'s uncertainty penalty subtracts)."""
    from rmcourse.policy import BODY_BUDGET, DETAIL, END, FILLER, MAX_DETAIL, RIGHT

    if not prompts:
        raise ValueError("prompts is empty")
    rows = []
    for d in range(MAX_DETAIL + 1):
        f = BODY_BUDGET - 1 - d
        seq = [RIGHT] + [DETAIL] * d + [FILLER] * f + [END]
        scores = proxy([p["text"] for p in prompts], [render(p, seq) for p in prompts])
        final = torch.tensor([[0, 1, d, f, 0, 1]])
        row = {"detail": d, "filler": f, "gold": float(answer_gold(final)[0]),
               "proxy": float(np.mean(scores)), "proxy_sd": float(np.std(scores))}
        members = getattr(proxy, "members", None)
        if members:
            x = hashed_features([p["text"] for p in prompts], [render(p, seq) for p in prompts])
            member_scores = torch.stack([score_head(h, x) for h in members])
            row["member_var"] = float(member_variance(member_scores).mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("detail")


def recombine_ensemble(ensemble: ProxyReward, method: str, lam: float = 1.0,
                       name: str | None = None) -> ProxyReward:
    """The members of an `rmcourse.proxies.ensemble_proxy`, combined by another rule
    (`rmcourse.ensembles.combine_rewards`: "mean", "worst" or "uncertainty" = mean - lam * var),
    without training them again. A fresh cache: the scores differ from the ensemble's."""
    members = getattr(ensemble, "members", None)
    if not members:
        raise TypeError("ensemble must be a proxy built by rmcourse.proxies.ensemble_proxy (it has .members)")
    combine_rewards(torch.zeros(2, 1), method, lam)  # validates method and lam now, not at the first call

    def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        x = hashed_features(prompts, answers)
        return combine_rewards(torch.stack([score_head(h, x) for h in members]), method, lam).numpy()

    proxy = ProxyReward(score, name or f"ensemble-{method}")
    proxy.members = members
    return proxy


def reusing_head_proxy(base_pairs: Any, *, epochs: int = 2, hidden: int = 64, seed: int = 0,
                       name: str = "head") -> Callable[[Any], ProxyReward]:
    """`rmcourse.proxies.head_proxy` for pair sets that START with ``base_pairs``.

    Returns ``make_proxy(ds)``: the same features, the same training and so the same proxy as
    ``head_proxy(ds, epochs=epochs, hidden=hidden, seed=seed)``, but the base pairs are hashed
    once, here, and each call hashes only the rows after them. Iterated RLHF retrains on the
    original pairs plus a few hundred new ones every round, and re-hashing the originals was
    most of that cost. ``ds`` must begin with exactly the base pairs (checked)."""
    from rmcourse.heads import PairFeatures, pair_features, train_head

    base = pair_features(base_pairs)
    columns = {c: list(base_pairs[c]) for c in ("prompt", "chosen", "rejected")}
    n = len(columns["prompt"])

    def make_proxy(ds: Any) -> ProxyReward:
        names = getattr(ds, "column_names", None)
        if names is None or not set(columns) <= set(names):
            raise TypeError("ds must be a pair dataset with prompt, chosen and rejected columns")
        if len(ds) < n or any(list(ds[c][:n]) != v for c, v in columns.items()):
            raise ValueError(f"ds must start with the {n} base pairs (e.g. pair_dataset(base_pairs, new_pairs))")
        feats = base
        if len(ds) > n:
            extra = pair_features(ds.select(range(n, len(ds))), with_margin=False)
            feats = PairFeatures(torch.cat([base.chosen, extra.chosen]), torch.cat([base.rejected, extra.rejected]))
        head = train_head(feats, hidden=hidden, epochs=epochs, seed=seed).head

        def score(prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
            return score_head(head, hashed_features(prompts, answers)).numpy()

        proxy = ProxyReward(score, name)
        proxy.model = head
        return proxy

    return make_proxy


# ------------------------------------------------------------------ simulated annotators
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def vote_labels(gold_a: Any, gold_b: Any, temperatures: Sequence[float],
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One simulated annotator's vote per pair: the annotator is drawn uniformly from
    ``temperatures`` and prefers a with probability sigmoid((gold_a - gold_b) / T), the
    Bradley-Terry vote `PreferenceWorld.pairs` releases as a training label.
    Returns (a_wins [N] bool, T [N])."""
    ga, gb = np.asarray(gold_a, dtype=float), np.asarray(gold_b, dtype=float)
    if ga.shape != gb.shape or ga.ndim != 1:
        raise ValueError(f"gold_a and gold_b must be 1-D and equally long, got {ga.shape} and {gb.shape}")
    temps = np.asarray(temperatures, dtype=float)
    if temps.ndim != 1 or temps.size == 0 or np.any(~np.isfinite(temps)) or np.any(temps <= 0):
        raise ValueError(f"temperatures must be a non-empty list of positive numbers, got {temperatures!r}")
    t = temps[rng.integers(0, temps.size, ga.size)]
    return rng.random(ga.size) < _sigmoid((ga - gb) / t), t


def on_policy_pairs(policy: AnswerPolicy, ref: AnswerPolicy, prompts: Sequence[Mapping], world: Any, *,
                    k: int = 1, seed: int = 0):
    """Preference pairs on the policy's own answers, as a new round of annotation collects them.

    For every prompt, ``k`` answers of ``policy`` are paired with ``k`` answers of ``ref`` to the
    same prompt, and one random annotator of ``world`` (its `annotator_temperatures`) votes on
    each pair by the gold reward. Pairs of equal gold are left out, as the world leaves them out
    of its own pairs (no annotator has a right answer there). Returns a `datasets.Dataset` with
    prompt, chosen, rejected, chosen_gold, rejected_gold, label_correct and policy_chosen (the
    policy's answer won the vote), and the prompt's index in ``prompts``.
    """
    import datasets

    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if not prompts:
        raise ValueError("prompts is empty")
    temps = getattr(world, "annotator_temperatures", None)
    if not temps:
        raise TypeError("world must be a PreferenceWorld (it needs annotator_temperatures)")
    feats = prompt_features(list(prompts))
    gen = torch.Generator().manual_seed(seed)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster (as in rmcourse.rl)
    try:
        rolls = [sample(policy, feats, k, gen), sample(ref, feats, k, gen)]
    finally:
        torch.set_num_threads(before)
    idx = rolls[0].prompt_index.tolist()
    texts = [[render(prompts[i], seq) for i, seq in zip(idx, r.action_lists())] for r in rolls]
    golds = [answer_gold(r.final).numpy().astype(float) for r in rolls]
    keep = golds[0] != golds[1]
    rng = np.random.default_rng(seed)
    a_wins, _ = vote_labels(golds[0][keep], golds[1][keep], temps, rng)
    rows: dict[str, list] = {c: [] for c in ("prompt", "chosen", "rejected", "chosen_gold", "rejected_gold",
                                            "label_correct", "policy_chosen", "prompt_index")}
    for j, win in zip(np.nonzero(keep)[0].tolist(), a_wins.tolist()):
        c, r = (0, 1) if win else (1, 0)
        rows["prompt"].append(prompts[idx[j]]["text"])
        rows["chosen"].append(texts[c][j])
        rows["rejected"].append(texts[r][j])
        rows["chosen_gold"].append(float(golds[c][j]))
        rows["rejected_gold"].append(float(golds[r][j]))
        rows["label_correct"].append(bool(golds[c][j] > golds[r][j]))
        rows["policy_chosen"].append(bool(win))
        rows["prompt_index"].append(idx[j])
    return datasets.Dataset.from_dict(rows)


def pair_dataset(*parts: Any):
    """One pair dataset (prompt, chosen, rejected) from several, in order (other columns dropped)."""
    import datasets

    if not parts:
        raise ValueError("pair_dataset needs at least one dataset")
    rows: dict[str, list] = {"prompt": [], "chosen": [], "rejected": []}
    for part in parts:
        names = getattr(part, "column_names", None)
        if names is None or not set(rows) <= set(names):
            raise TypeError("every part must be a pair dataset with prompt, chosen and rejected columns")
        for col in rows:
            rows[col].extend(part[col])
    return datasets.Dataset.from_dict(rows)


# ------------------------------------------------------------------ iterated RLHF
_ROUND_SEED = 100_003  # round r samples and labels with seed + r * _ROUND_SEED


@dataclass
class IteratedRun:
    """The final policy; one history row per evaluation over all rounds (``round`` 1, 2, ...,
    ``step`` counted from the start of round 1; the evaluation that opens a later round repeats
    the one that closed the round before and is left out); the proxy of every round; and the
    pairs collected on the policy before every round after the first."""

    policy: AnswerPolicy
    history: pd.DataFrame
    proxies: list[ProxyReward] = field(default_factory=list)
    new_pairs: list[Any] = field(default_factory=list)


def iterated_rlhf(ref: AnswerPolicy, prompts: Sequence[Mapping], base_pairs: Any, world: Any, *,
                  make_proxy: Callable[[Any], ProxyReward], first_proxy: ProxyReward | None = None,
                  rounds: int = 2, steps_per_round: int = 12, pairs_per_prompt: int = 1, seed: int = 0,
                  **rl_kwargs: Any) -> IteratedRun:
    """RL in ``rounds`` rounds; before every round after the first, label new pairs on the
    current policy (`on_policy_pairs`), retrain the proxy with ``make_proxy`` on ``base_pairs``
    plus ALL pairs collected so far, and continue RL from the current policy
    (``train_rl(..., init=policy)``; the KL is always to ``ref``). ``first_proxy`` (default
    ``make_proxy(base_pairs)``) scores round 1. Round 1 uses ``seed``, so with the same
    ``rl_kwargs`` it is step for step the first ``steps_per_round`` steps of
    ``train_rl(ref, prompts, first_proxy, seed=seed, ...)``: the plain run is the control.
    """
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    if "init" in rl_kwargs or "steps" in rl_kwargs:
        raise ValueError("iterated_rlhf sets init and steps itself: pass steps_per_round")
    proxy = first_proxy if first_proxy is not None else make_proxy(base_pairs)
    policy, frames, proxies, collected = None, [], [proxy], []
    for r in range(rounds):
        if r > 0:
            collected.append(on_policy_pairs(policy, ref, prompts, world, k=pairs_per_prompt,
                                             seed=seed + _ROUND_SEED * r))
            proxy = make_proxy(pair_dataset(base_pairs, *collected))
            proxies.append(proxy)
        run = train_rl(ref, prompts, proxy, steps=steps_per_round, seed=seed + _ROUND_SEED * r,
                       init=policy, **rl_kwargs)
        policy = run.policy
        h = run.history.copy()
        h["step"] = h["step"] + r * steps_per_round
        h.insert(0, "round", r + 1)
        frames.append(h if r == 0 else h.iloc[1:])
    return IteratedRun(policy, pd.concat(frames, ignore_index=True), proxies, collected)
