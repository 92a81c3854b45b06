"""A policy that writes preference-world answers one sentence at a time (chapter 09).

Chapter 09 trains a policy against a learned reward model and reads every step against the
world's gold reward. A language model would make that slow and opaque on a CPU; this policy is
small and exact instead. Its tokens are *sentence units* of the world's own vocabulary:

    end, opener, curt, right, wrong, detail, filler, closer

so an action sequence such as ``opener right detail filler detail closer end`` renders to a real
world answer ("Great question! Canberra is the capital of Australia. ...") whose hidden
attributes, and so its gold reward, are known exactly. A grammar keeps every sample a
well-formed answer (one claim, details after it, at most ``MAX_DETAIL`` details and
``MAX_FILLER`` filler sentences, a style sentence only first, a closer only last) and imposes a
**length budget**: the body (claim + details + filler) holds at most ``BODY_BUDGET`` sentences,
as a token budget does in real generation. So filler the proxy likes has to crowd out detail that
gold likes.

`AnswerPolicy` is a small network: the prompt's hashed words and the answer's state so far
(which style sentence, which claim, how many details and fillers, whether it closed) go in,
logits over the eight units come out. The state is a sufficient statistic of the answer so far,
so the probability of a sequence factorises over a few hundred states, and `exact_stats`
computes by dynamic programming what sampling only estimates: the exact KL(pi || pi_ref) of two
policies and the exact expected gold reward and attributes of their answers.
"""
from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.device import one_thread
from rmcourse.world import GOLD_WEIGHTS

__all__ = [
    "ACTIONS", "BODY_BUDGET", "MAX_FILLER", "MAX_DETAIL", "MAX_STEPS",
    "AnswerPolicy", "Rollout", "prompt_features", "final_state", "n_states", "render", "answer_attrs", "answer_gold",
    "sample", "sequence_logprobs", "demonstration", "sft_sequences", "fit_sft", "sft_reference", "exact_stats",
]

ACTIONS: tuple[str, ...] = ("end", "opener", "curt", "right", "wrong", "detail", "filler", "closer")
END, OPENER, CURT, RIGHT, WRONG, DETAIL, FILLER, CLOSER = range(len(ACTIONS))
BODY_BUDGET = 6   # claim + details + filler sentences
MAX_DETAIL = 3    # the world's topics have three detail sentences
MAX_FILLER = 6    # the world's pools pad with up to six
MAX_STEPS = BODY_BUDGET + 3  # style sentence, body, closer, end
PROMPT_DIM = 64

# A state is (style, claim, n_detail, n_filler, closed, done); style 0 none / 1 opener / 2 curt,
# claim 0 none / 1 right / 2 wrong.
State = tuple[int, int, int, int, int, int]
START: State = (0, 0, 0, 0, 0, 0)
_FIELDS = ("style", "claim", "detail", "filler", "closed", "done")


def _allowed(state: State) -> list[int]:
    style, claim, n_detail, n_filler, closed, done = state
    if done:
        return []
    if closed:
        return [END]
    body = (claim > 0) + n_detail + n_filler
    out = []
    if style == 0 and body == 0:
        out += [OPENER, CURT]
    if claim == 0 and body < BODY_BUDGET:
        out += [RIGHT, WRONG]
    if claim > 0 and n_detail < MAX_DETAIL and body < BODY_BUDGET:
        out.append(DETAIL)
    # filler may come before the claim, but never takes the last slot the claim needs
    if n_filler < MAX_FILLER and body < BODY_BUDGET - (claim == 0):
        out.append(FILLER)
    if claim > 0:
        out += [CLOSER, END]
    return sorted(out)


def _step(state: State, action: int) -> State:
    style, claim, n_detail, n_filler, closed, done = state
    if action not in _allowed(state):
        raise ValueError(f"action {ACTIONS[action]!r} is not allowed in state {dict(zip(_FIELDS, state))}")
    if action == OPENER:
        style = 1
    elif action == CURT:
        style = 2
    elif action in (RIGHT, WRONG):
        claim = 1 if action == RIGHT else 2
    elif action == DETAIL:
        n_detail += 1
    elif action == FILLER:
        n_filler += 1
    elif action == CLOSER:
        closed = 1
    else:
        done = 1
    return (style, claim, n_detail, n_filler, closed, done)


@lru_cache(maxsize=1)
def _state_space() -> tuple[list[State], dict[State, int], torch.Tensor, torch.Tensor]:
    """Every reachable state in topological order, its index, allowed-action mask and successors."""
    order, seen, frontier = [START], {START: 0}, [START]
    while frontier:
        nxt = []
        for s in frontier:
            for a in _allowed(s):
                t = _step(s, a)
                if t not in seen:
                    seen[t] = len(order)
                    order.append(t)
                    nxt.append(t)
        frontier = nxt  # breadth first: every state comes after all states that lead to it
    mask = torch.zeros(len(order), len(ACTIONS), dtype=torch.bool)
    succ = torch.full((len(order), len(ACTIONS)), -1, dtype=torch.long)
    for i, s in enumerate(order):
        for a in _allowed(s):
            mask[i, a] = True
            succ[i, a] = seen[_step(s, a)]
    return order, seen, mask, succ


def final_state(actions: Sequence[int]) -> State:
    """The state (style, claim, n_detail, n_filler, closed, done) an action sequence ends in."""
    state = START
    for a in actions:
        state = _step(state, int(a))
    return state


def n_states() -> int:
    """How many states the grammar can reach: the size of the dynamic programme in `exact_stats`."""
    return len(_state_space()[0])


@lru_cache(maxsize=1)
def _levels() -> list[dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Transitions grouped by the depth of their source state: per level, {action: (sources, targets)}."""
    order, _, mask, succ = _state_space()
    depth = [sum(1 for x in (s[0] > 0, s[1] > 0) if x) + s[2] + s[3] + s[4] + s[5] for s in order]
    levels: list[dict[int, tuple[list[int], list[int]]]] = [dict() for _ in range(max(depth) + 1)]
    for i in range(len(order)):
        for a in torch.nonzero(mask[i]).flatten().tolist():
            src, dst = levels[depth[i]].setdefault(a, ([], []))
            src.append(i)
            dst.append(int(succ[i, a]))
    return [{a: (torch.tensor(src), torch.tensor(dst)) for a, (src, dst) in lvl.items()} for lvl in levels if lvl]


def _state_features(states: torch.Tensor) -> torch.Tensor:
    """One-hot features of states [..., 6] -> [..., 25]: style, claim, details, fillers, closed, body size."""
    s = states.long()
    body = (s[..., 1] > 0).long() + s[..., 2] + s[..., 3]
    parts = [F.one_hot(s[..., 0], 3), F.one_hot(s[..., 1], 3), F.one_hot(s[..., 2], MAX_DETAIL + 1),
             F.one_hot(s[..., 3], MAX_FILLER + 1), s[..., 4:5], F.one_hot(body.clamp(max=BODY_BUDGET), BODY_BUDGET + 1)]
    return torch.cat(parts, dim=-1).float()


STATE_DIM = 3 + 3 + (MAX_DETAIL + 1) + (MAX_FILLER + 1) + 1 + (BODY_BUDGET + 1)


def prompt_features(prompts: Sequence[str] | Sequence[Mapping], dim: int = PROMPT_DIM) -> torch.Tensor:
    """Float32 [P, dim]: log1p counts of the prompt's hashed lower-case words (what the policy reads)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of prompts, got a single string")
    out = np.zeros((len(prompts), dim), dtype=np.float32)
    for i, p in enumerate(prompts):
        text = p["text"] if isinstance(p, Mapping) else p
        if not isinstance(text, str):
            raise TypeError(f"prompts[{i}] must be a string or a world prompt dict, got {type(text).__name__}")
        for word in text.lower().replace("?", " ").replace("!", " ").replace(",", " ").split():
            out[i, zlib.crc32(word.encode()) % dim] += 1.0
    return torch.from_numpy(np.log1p(out))


class AnswerPolicy(nn.Module):
    """pi(unit | prompt, state): an MLP over the prompt's hashed words and the answer's state."""

    def __init__(self, hidden: int = 64, prompt_dim: int = PROMPT_DIM, seed: int = 0) -> None:
        super().__init__()
        self.prompt_dim = prompt_dim
        with torch.random.fork_rng():  # seeded initial weights, without resetting the caller's RNG
            torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(prompt_dim + STATE_DIM, hidden), nn.Tanh(),
                                     nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, len(ACTIONS)))

    def forward(self, prompt_feats: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Masked log-probabilities [..., 8] for prompt features [..., D] and states [..., 6]."""
        x = torch.cat([prompt_feats, _state_features(states)], dim=-1)
        logits = self.net(x)
        allowed = _masks(states)
        allowed[..., END] |= ~allowed.any(-1)  # a finished answer "ends" again, so every row is a distribution
        return torch.log_softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)


def _masks(states: torch.Tensor) -> torch.Tensor:
    """Allowed-action masks [..., 8] of states [..., 6], vectorised (the grammar of `_allowed`)."""
    s = states.long()
    style, claim, nd, nf, closed, done = (s[..., i] for i in range(6))
    body = (claim > 0).long() + nd + nf
    open_ = (done == 0) & (closed == 0)
    has_claim = claim > 0
    m = torch.zeros(*s.shape[:-1], len(ACTIONS), dtype=torch.bool)
    m[..., OPENER] = open_ & (style == 0) & (body == 0)
    m[..., CURT] = m[..., OPENER]
    m[..., RIGHT] = open_ & ~has_claim & (body < BODY_BUDGET)
    m[..., WRONG] = m[..., RIGHT]
    m[..., DETAIL] = open_ & has_claim & (nd < MAX_DETAIL) & (body < BODY_BUDGET)
    m[..., FILLER] = open_ & (nf < MAX_FILLER) & (body < BODY_BUDGET - (~has_claim).long())
    m[..., CLOSER] = open_ & has_claim
    m[..., END] = (done == 0) & (has_claim | (closed == 1))
    return m


def _transition(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Vectorised `_step` for states [N, 6] and actions [N] (no checks: actions come from the masks)."""
    s = states.clone()
    a = actions
    s[:, 0] = torch.where(a == OPENER, 1, torch.where(a == CURT, 2, s[:, 0]))
    s[:, 1] = torch.where(a == RIGHT, 1, torch.where(a == WRONG, 2, s[:, 1]))
    s[:, 2] += (a == DETAIL).long()
    s[:, 3] += (a == FILLER).long()
    s[:, 4] = torch.where(a == CLOSER, 1, s[:, 4])
    s[:, 5] = torch.where(a == END, 1, s[:, 5])
    return s


@dataclass
class Rollout:
    """Sampled answers: actions [N, T] (-1 after the end), the state before each action [N, T, 6],
    their log-probabilities under the sampling policy [N, T] (0 after the end), the valid-token
    mask [N, T], the final states [N, 6] and the prompt of each row [N]."""

    actions: torch.Tensor
    states: torch.Tensor
    logprobs: torch.Tensor
    mask: torch.Tensor
    final: torch.Tensor
    prompt_index: torch.Tensor

    def __len__(self) -> int:
        return self.actions.shape[0]

    def action_lists(self) -> list[list[int]]:
        return [[int(a) for a in row if a >= 0] for row in self.actions]


@one_thread
@torch.no_grad()
def sample(policy: AnswerPolicy, prompt_feats: torch.Tensor, k: int = 1,
           generator: torch.Generator | None = None) -> Rollout:
    """``k`` answers per prompt (rows prompt-major: prompt 0's k answers first)."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if prompt_feats.ndim != 2:
        raise ValueError(f"prompt_feats must be [prompts, features], got shape {tuple(prompt_feats.shape)}")
    index = torch.arange(prompt_feats.shape[0]).repeat_interleave(k)
    feats = prompt_feats[index]
    n = len(index)
    state = torch.zeros(n, 6, dtype=torch.long)
    actions = torch.full((n, MAX_STEPS), -1, dtype=torch.long)
    states = torch.zeros(n, MAX_STEPS, 6, dtype=torch.long)
    logprobs = torch.zeros(n, MAX_STEPS)
    mask = torch.zeros(n, MAX_STEPS, dtype=torch.bool)
    for t in range(MAX_STEPS):
        live = state[:, 5] == 0
        if not live.any():
            break
        logp = policy(feats, state)
        probs = logp.exp().masked_fill(~live[:, None], 0.0)
        probs[~live, END] = 1.0  # finished rows draw a placeholder that is never used
        a = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        states[:, t] = state
        actions[:, t] = torch.where(live, a, -1)
        logprobs[:, t] = torch.where(live, logp.gather(1, a[:, None]).squeeze(1), 0.0)
        mask[:, t] = live
        state = torch.where(live[:, None], _transition(state, a), state)
    return Rollout(actions, states, logprobs, mask, state, index)


def sequence_logprobs(policy: AnswerPolicy, prompt_feats: torch.Tensor, rollout: Rollout) -> torch.Tensor:
    """Per-token log-probabilities [N, T] of a rollout's actions under ``policy`` (0 after the end),
    with gradient: one forward over every (answer, step)."""
    feats = prompt_feats[rollout.prompt_index][:, None, :].expand(-1, MAX_STEPS, -1)
    logp = policy(feats, rollout.states)
    taken = rollout.actions.clamp(min=0)
    out = logp.gather(-1, taken[..., None]).squeeze(-1)
    return torch.where(rollout.mask, out, torch.zeros_like(out))


def _pick(options: Sequence[str], key: str) -> str:
    return options[zlib.crc32(key.encode()) % len(options)]


_RENDER_KEYS = ("id", "right", "wrong", "details", "filler", "opener", "closer", "curt")


def render(prompt: Mapping, actions: Sequence[int]) -> str:
    """The world answer an action sequence writes for a prompt from `PreferenceWorld.prompts`.

    Deterministic: wordings are picked by a hash of the prompt's id (the right and wrong claim
    share a sentence pattern, as in the world's own chat_hard pairs), the k-th detail is the
    topic's k-th detail sentence and the k-th filler the k-th of a per-prompt shuffle of the
    world's filler sentences.
    """
    # RL renders the same few answers thousands of times: cache on everything the text depends on
    key = tuple(tuple(prompt[k]) if not isinstance(prompt[k], str) else prompt[k] for k in _RENDER_KEYS)
    return _render_cached(key, tuple(int(a) for a in actions))


@lru_cache(maxsize=100_000)
def _render_cached(key: tuple, actions: tuple[int, ...]) -> str:
    return _render_uncached(dict(zip(_RENDER_KEYS, key)), actions)


def _render_uncached(prompt: Mapping, actions: Sequence[int]) -> str:
    """`render` without the cache."""
    pid = prompt["id"]
    wording = zlib.crc32(("claim|" + pid).encode()) % len(prompt["right"])
    fillers = list(prompt["filler"])
    random.Random(zlib.crc32(("filler|" + pid).encode())).shuffle(fillers)
    out, n_detail, n_filler, state = [], 0, 0, START
    for a in actions:
        state = _step(state, int(a))  # raises on an action the grammar forbids
        if a == OPENER:
            out.append(_pick(prompt["opener"], "opener|" + pid))
        elif a == CURT:
            out.append(_pick(prompt["curt"], "curt|" + pid))
        elif a == RIGHT:
            out.append(prompt["right"][wording])
        elif a == WRONG:
            out.append(prompt["wrong"][min(wording, len(prompt["wrong"]) - 1)])
        elif a == DETAIL:
            out.append(prompt["details"][n_detail])
            n_detail += 1
        elif a == FILLER:
            out.append(fillers[n_filler])
            n_filler += 1
        elif a == CLOSER:
            out.append(_pick(prompt["closer"], "closer|" + pid))
    if not state[5]:
        raise ValueError("the action sequence does not end with 'end'")
    return " ".join(out)


def answer_attrs(state: Sequence[int]) -> dict:
    """The world attributes of a finished answer's state (style, claim, details, fillers, closed, done)."""
    style, claim, n_detail, n_filler, closed, done = (int(x) for x in state)
    if claim == 0:
        raise ValueError("an answer without a claim has no world attributes")
    return {"correct": claim == 1, "refuses": False, "detail": n_detail, "polite": style == 1 or closed == 1,
            "padding": n_filler, "should_refuse": False}


def answer_gold(final_states: torch.Tensor) -> torch.Tensor:
    """Gold reward [N] of finished answers from their final states [N, 6] (`world.gold_reward`)."""
    s = final_states.long()
    w = GOLD_WEIGHTS
    polite = ((s[:, 0] == 1) | (s[:, 4] == 1)).float()
    sign = torch.where(s[:, 1] == 1, 1.0, -1.0)
    return w["detail"] * s[:, 2].float() + w["polite"] * polite + w["correct"] * sign + w["padding"] * s[:, 3].float()


def demonstration(attrs: Mapping, rng: random.Random) -> list[int] | None:
    """An action sequence for a world answer's attributes, laid out as the world renders it
    (a polite answer has an opener, a closer or both; an impolite one is curt half the time; filler
    goes anywhere in the body), or None when it is no claim answer or does not fit the budget."""
    if attrs["refuses"] or attrs["correct"] is None:
        return None
    d, f = int(attrs["detail"]), int(attrs["padding"])
    if 1 + d + f > BODY_BUDGET or f > MAX_FILLER:
        return None
    head, tail = [], []
    if attrs["polite"]:
        kind = rng.randrange(3)  # opener, closer or both, as the world does
        head = [OPENER] if kind != 1 else []
        tail = [CLOSER] if kind != 0 else []
    elif rng.random() < 0.5:
        head = [CURT]
    body = [RIGHT if attrs["correct"] else WRONG] + [DETAIL] * d
    for _ in range(f):
        body.insert(rng.randint(0, len(body)), FILLER)
    return head + body + tail + [END]


def sft_sequences(ds, seed: int = 0) -> tuple[list[str], list[list[int]]]:
    """(prompts, action sequences) for SFT: the chosen answers of a pair dataset's chat rows that fit."""
    rng = random.Random(seed)
    prompts, seqs = [], []
    for prompt, section, attrs in zip(ds["prompt"], ds["section"], ds["chosen_attrs"]):
        if section != "chat":
            continue
        seq = demonstration(attrs, rng)
        if seq is not None:
            prompts.append(prompt)
            seqs.append(seq)
    if not seqs:
        raise ValueError("no chat answer in the data fits the policy's grammar")
    return prompts, seqs


def _teacher_forced(prompt_feats: torch.Tensor, seqs: Sequence[Sequence[int]]) -> Rollout:
    n = len(seqs)
    actions = torch.full((n, MAX_STEPS), -1, dtype=torch.long)
    states = torch.zeros(n, MAX_STEPS, 6, dtype=torch.long)
    mask = torch.zeros(n, MAX_STEPS, dtype=torch.bool)
    final = torch.zeros(n, 6, dtype=torch.long)
    for i, seq in enumerate(seqs):
        state = START
        for t, a in enumerate(seq):
            states[i, t] = torch.tensor(state)
            actions[i, t] = a
            mask[i, t] = True
            state = _step(state, a)
        final[i] = torch.tensor(state)
    return Rollout(actions, states, torch.zeros(n, MAX_STEPS), mask, final, torch.arange(n))


@one_thread
def fit_sft(policy: AnswerPolicy, prompt_feats: torch.Tensor, seqs: Sequence[Sequence[int]], *,
            epochs: int = 30, batch_size: int = 64, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Maximum likelihood on action sequences (teacher forcing); returns the mean NLL per token per epoch."""
    if len(seqs) != prompt_feats.shape[0]:
        raise ValueError(f"{prompt_feats.shape[0]} prompts but {len(seqs)} sequences")
    data = _teacher_forced(prompt_feats, seqs)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        order = torch.randperm(len(seqs), generator=gen)
        total, tokens = 0.0, 0
        for start in range(0, len(seqs), batch_size):
            idx = order[start:start + batch_size]
            batch = Rollout(data.actions[idx], data.states[idx], data.logprobs[idx], data.mask[idx],
                            data.final[idx], torch.arange(len(idx)))
            logp = sequence_logprobs(policy, prompt_feats[idx], batch)
            loss = -logp.sum() / batch.mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(-logp.detach().sum())
            tokens += int(batch.mask.sum())
        history.append(total / tokens)
    return history


def sft_reference(world, n_pairs: int = 4000, epochs: int = 20, seed: int = 0) -> tuple[AnswerPolicy, list[float], int]:
    """The reference policy: an `AnswerPolicy` fitted by maximum likelihood to the chosen chat
    answers of ``world.pairs("train", n_pairs)`` that fit the grammar. Returns (policy, NLL per
    token per epoch, number of demonstrations)."""
    prompts, seqs = sft_sequences(world.pairs("train", n_pairs), seed=seed)
    policy = AnswerPolicy(seed=seed)
    history = fit_sft(policy, prompt_features(prompts), seqs, epochs=epochs, seed=seed)
    return policy.eval(), history, len(seqs)


@one_thread
@torch.no_grad()
def exact_stats(policy: AnswerPolicy, prompt_feats: torch.Tensor, ref: AnswerPolicy | None = None) -> dict:
    """Exact per-prompt expectations under ``policy`` by dynamic programming over the state space.

    Returns tensors [P]: ``kl`` (KL(policy || ref), 0 without ref), ``gold`` (expected gold),
    ``detail``, ``filler``, ``right`` (probability of the right claim), ``polite`` and
    ``sentences`` (expected number of sentences).
    """
    order, _, mask, succ = _state_space()
    states = torch.tensor(order)
    p, s = prompt_feats.shape[0], len(order)
    feats = prompt_feats[:, None, :].expand(p, s, -1)
    st = states[None].expand(p, s, 6)
    logp = policy(feats, st)
    probs = logp.exp()
    kl_state = torch.zeros(p, s)
    if ref is not None:
        ref_logp = ref(feats, st)
        diff = torch.where(mask[None], logp - ref_logp, torch.zeros_like(logp))
        kl_state = (probs * diff).sum(-1)
    # occupancy: the probability of passing through each state. A state's depth (actions taken so
    # far) is fixed by the state, and every action adds one, so one level at a time has all its
    # incoming mass before it passes it on.
    occ = torch.zeros(p, s)
    occ[:, 0] = 1.0
    for level in _levels():
        for a, (src, dst) in level.items():
            occ.index_add_(1, dst, occ[:, src] * probs[:, src, a])
    done = states[:, 5] == 1
    final = occ[:, done]
    fs = states[done]
    gold = answer_gold(fs)
    polite = ((fs[:, 0] == 1) | (fs[:, 4] == 1)).float()
    sentences = (fs[:, 0] > 0).float() + (fs[:, 1] > 0).float() + fs[:, 2] + fs[:, 3] + fs[:, 4]
    return {"kl": (occ * kl_state).sum(1), "gold": final @ gold, "detail": final @ fs[:, 2].float(),
            "filler": final @ fs[:, 3].float(), "right": final @ (fs[:, 1] == 1).float(),
            "polite": final @ polite, "sentences": final @ sentences.float()}
