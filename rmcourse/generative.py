"""A decoder LM used as a judge: next-token log-probabilities, p("Yes") rewards, greedy generation.

Chapters 07 and 07b use SmolLM2-135M-Instruct (bundled as a GGUF file) not as a reward model with a
scalar head (that is `rmcourse.models.load_reward_model("smollm2")`) but as a *causal* LM: it reads a
judging prompt and the course reads the probabilities of its next token ("Score: 4", "Yes",
"A"), or lets it write a critique. Four things make that affordable on a 2-core CPU:

* one model per process (`load_causal_lm` keeps it), read from the GGUF file's converted folder
  (`rmcourse.gguf_cache`: the file is parsed once per machine);
* a **shared prompt prefix is run once**: judge prompts start with the same long instructions
  (the Self-Rewarding rubric is ~300 tokens), so `next_token_logprobs` and `generate` find the
  longest common token prefix of a call, compute its key/value cache once and reuse it for every
  row (with causal attention the result equals running each full prompt, up to rounding);
* bf16 autocast where the hardware has bf16 units (`rmcourse.device.bf16_supported`: CUDA, or a
  CPU with AMX / AVX512-BF16): the course measured SmolLM2's forward over 16 sequences of 150
  tokens at 0.9 s under bf16 autocast against 3.3 s in float32 on its 2-core CPU;
* all cores on a quiet CPU, one thread on a busy one (`CausalLM.cpu_threads`, default None:
  torch's own thread count). On the course's 2-core AVX2 machine with nothing else running, 16
  rubric prompts scored in 9-10 s with two threads against 18 s with one, with bit-identical
  log-probabilities and greedy generations (checked 2026-12-07); with other jobs running,
  SmolLM2 scored 245 tokens/s with one thread and 65 tokens/s with two (the two threads wait on
  each other whenever one is descheduled), so set `lm.cpu_threads = 1` on a shared machine.

Slow results (generations, scored pools) are cached as JSON under `artifacts/ch07-cache/`, keyed
by the model file's sha256, the exact texts and every setting (`cached_call`), so a re-run is
fast and a changed prompt or model is never served a stale answer.

The rows are left-padded after the shared prefix and given explicit position ids, so padding
never shifts a row's positions and the last column is every row's last real token.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from rmcourse.bootstrap import as_numbers
from rmcourse.device import bf16_supported, pick_device

__all__ = [
    "CausalLM",
    "load_causal_lm",
    "single_token_id",
    "next_token_logprobs",
    "yes_probability",
    "two_way_share",
    "GENRM_TEMPLATE",
    "genrm_rewards",
    "generate",
    "common_prefix_length",
    "cached_call",
    "CACHE_FOLDER",
]

CACHE_FOLDER = "ch07-cache"
_MIN_SHARED_PREFIX = 8  # shorter common prefixes are not worth a separate forward
_LOADED: dict[tuple[str, str, bool], "CausalLM"] = {}  # (name, device, bf16)


@dataclass
class CausalLM:
    """A causal LM, its tokenizer and how to run it (device, bf16 autocast or not).

    `sha256` identifies the weights for caches; `system` is the chat system prompt every
    `chat` call uses (None: the model's own default from its chat template); `cpu_threads` the
    intra-op threads used on a CPU (see the module docstring).
    """

    model: Any
    tokenizer: Any
    device: torch.device
    bf16: bool
    name: str
    sha256: str
    system: str | None = None
    cpu_threads: int | None = None
    stats: dict = field(default_factory=lambda: {"forward_tokens": 0, "generated_tokens": 0})

    def chat(self, user: str, assistant_prefix: str = "") -> str:
        """The chat-formatted text of one user turn, ready for the assistant's reply.

        `assistant_prefix` is appended after the assistant header, so the model continues it
        (e.g. "Score: " makes the next token the score).
        """
        if not isinstance(user, str) or not user.strip():
            raise ValueError("user message must be a non-empty string")
        if not isinstance(assistant_prefix, str):
            raise TypeError(f"assistant_prefix must be a str, got {type(assistant_prefix).__name__}")
        messages = [{"role": "user", "content": user}]
        if self.system is not None:
            messages.insert(0, {"role": "system", "content": self.system})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + assistant_prefix

    @contextlib.contextmanager
    def threads(self):
        """Run a block with `cpu_threads` intra-op threads on a CPU (None: torch's default)."""
        if self.device.type != "cpu" or self.cpu_threads is None:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.cpu_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on this device when `bf16` is set, else a no-op."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def settings(self) -> dict:
        """What decides this model's numbers (for cache keys)."""
        return {"name": self.name, "sha256": self.sha256, "bf16": self.bf16,
                "device": self.device.type, "system": self.system}


def load_causal_lm(name: str = "smollm2", device: str | torch.device | None = None,
                   bf16: bool | None = None) -> CausalLM:
    """The bundled decoder as a causal LM, loaded once per process and device (10-20 s on CPU);
    one `CausalLM` per bf16 setting, sharing the weights.

    `bf16=None` uses bf16 autocast where `rmcourse.device.bf16_supported(device)` says it pays.
    Only GGUF-bundled decoders ("smollm2") are supported.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rmcourse.gguf_cache import converted_gguf_folder
    from rmcourse.models import (BUNDLED, _give_distinct_pad, bundled_model_path, file_sha256,
                                 gguf_config, quiet_transformers)

    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in BUNDLED or BUNDLED[name][2] is None:
        decoders = sorted(k for k, v in BUNDLED.items() if v[2] is not None)
        raise ValueError(f"{name!r} is not a bundled decoder; choose one of {decoders}")
    if bf16 is not None and not isinstance(bf16, bool):
        raise TypeError(f"bf16 must be True, False or None, got {bf16!r}")
    from rmcourse.models import resolve_device  # names the devices this machine has

    target = pick_device() if device is None else resolve_device(device)
    use_bf16 = bf16_supported(target) if bf16 is None else bf16
    key = (name, str(target), use_bf16)
    cached = _LOADED.get(key)
    if cached is not None:
        return cached
    # the same weights under the other autocast setting: share them, never change a CausalLM
    # that another caller holds (its cache keys and numbers depend on its bf16)
    twin = _LOADED.get((name, str(target), not use_bf16))
    if twin is not None:
        lm = CausalLM(model=twin.model, tokenizer=twin.tokenizer, device=target, bf16=use_bf16,
                      name=name, sha256=twin.sha256)  # the defaults a fresh load has
        _LOADED[key] = lm
        return lm
    folder, gguf_file = bundled_model_path(name)
    source = converted_gguf_folder(folder, gguf_file)  # parsed once per machine, not per load
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = gguf_config(folder, gguf_file)
        config.pad_token_id = _give_distinct_pad(tokenizer)
        # the seed is irrelevant (every weight comes from the file); fork_rng keeps the caller's RNG
        with torch.random.fork_rng(devices=[]):
            model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=torch.float32)
    model.eval().requires_grad_(False)
    lm = CausalLM(model=model.to(target), tokenizer=tokenizer, device=target, bf16=use_bf16,
                  name=name, sha256=file_sha256(os.path.join(folder, gguf_file)))
    _LOADED[key] = lm
    return lm


def _check_lm(lm: Any) -> CausalLM:
    """`lm` checked to be a `CausalLM` before anything is read from it (a `RewardModel` has a
    tokenizer too, but no chat template wrapper and no next-token head)."""
    if not isinstance(lm, CausalLM):
        hint = ""
        if type(lm).__name__ == "RewardModel":
            hint = ": a reward model scores (prompt, response) pairs; load the decoder with load_causal_lm()"
        raise TypeError(f"lm must be a CausalLM (load_causal_lm()), got {type(lm).__name__}{hint}")
    return lm


def single_token_id(lm: CausalLM, text: str) -> int:
    """The id of `text` when it is exactly one token (e.g. "Yes", "4"); ValueError otherwise."""
    _check_lm(lm)
    if not isinstance(text, str) or not text:
        raise ValueError(f"a candidate token must be a non-empty string, got {text!r}")
    ids = lm.tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{text!r} is {len(ids)} tokens for this tokenizer, not one; "
                         "next-token scoring needs single-token candidates")
    return ids[0]


def common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of token-id sequences (0 for an empty list)."""
    if not sequences:
        return 0
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for i in range(n):
        tok = first[i]
        if any(s[i] != tok for s in sequences):
            return i
    return n


def _check_texts(texts: Sequence[str], name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got a single string")
    if texts is None or isinstance(texts, (bytes, dict)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    if not out:
        raise ValueError(f"{name} is empty")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"empty text in {name}[{i}]")
    return out


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


def _encode(lm: CausalLM, texts: list[str]) -> tuple[list[int], list[list[int]]]:
    """(shared prefix ids, per-text suffix ids); every suffix keeps at least one token."""
    ids = [lm.tokenizer.encode(t, add_special_tokens=False) for t in texts]
    n = common_prefix_length(ids)
    n = min(n, min(len(x) for x in ids) - 1)  # each row needs a token of its own to read from
    if n < _MIN_SHARED_PREFIX:
        n = 0
    return ids[0][:n], [x[n:] for x in ids]


class _Prefix:
    """The key/value cache of a shared prefix, computed once and copied into each batch."""

    def __init__(self, lm: CausalLM, prefix: list[int]) -> None:
        self.length = len(prefix)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        if prefix:
            ids = torch.tensor([prefix], device=lm.device)
            with lm.autocast():
                out = lm.model(input_ids=ids, use_cache=True)
            lm.stats["forward_tokens"] += len(prefix)
            cache = out.cache
            self.layers = [(layer.keys, layer.values) for layer in cache.layers]

    def for_batch(self, batch: int):
        from transformers import DynamicCache

        if self.layers is None:
            return DynamicCache()
        return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1))
                                            for k, v in self.layers])


def _left_padded(lm: CausalLM, rows: list[list[int]], prefix_len: int) -> dict[str, torch.Tensor]:
    """Left-padded input ids, the mask over prefix + rows, and each token's true position."""
    width = max(len(r) for r in rows)
    pad = lm.tokenizer.pad_token_id
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = 1
    # positions continue after the prefix and skip the padding, as if each row ran alone
    positions = (prefix_len + mask.cumsum(1) - 1).clamp(min=prefix_len)
    full_mask = torch.cat([torch.ones((len(rows), prefix_len), dtype=torch.long), mask], dim=1)
    dev = lm.device
    return {"input_ids": ids.to(dev), "attention_mask": full_mask.to(dev), "position_ids": positions.to(dev)}


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _progress(iterable, total: int, desc: str, progress: bool):
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False)


@torch.no_grad()
def _next_token_logprobs(lm: CausalLM, texts: list[str], ids: list[int], batch_size: int,
                         progress: bool) -> list[list[float]]:
    prefix, rows = _encode(lm, texts)
    shared = _Prefix(lm, prefix)
    out = torch.empty(len(texts), len(ids))
    wanted = torch.tensor(ids, device=lm.device)
    batches = _batches([len(r) for r in rows], batch_size)
    for idx in _progress(batches, len(batches), "scoring", progress):
        batch = _left_padded(lm, [rows[i] for i in idx], shared.length)
        with lm.autocast():
            logits = lm.model(**batch, cache=shared.for_batch(len(idx)), use_cache=True,
                              logits_to_keep=1).logits[:, -1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        out[torch.as_tensor(idx)] = logprobs[:, wanted].cpu()
        lm.stats["forward_tokens"] += int(batch["attention_mask"][:, shared.length:].sum())
    return out.tolist()


def next_token_logprobs(lm: CausalLM, texts: Sequence[str], candidates: Sequence[str],
                        batch_size: int = 16, progress: bool = False,
                        cache: bool = True) -> torch.Tensor:
    """log p(candidate | text) of the next token, float32 [len(texts), len(candidates)].

    Each candidate must be one token (see `single_token_id`). The log-softmax runs over the whole
    vocabulary, so the rows do not sum to 1 over the candidates: what is missing is the mass the
    model puts on every other token. Batched, no grad, the shared prompt prefix run once; results
    are cached under artifacts/ when `cache` is true.
    """
    _check_lm(lm)
    texts = _check_texts(texts)
    if isinstance(candidates, str):
        raise TypeError("candidates must be a list of strings, got a single string")
    candidates = list(candidates)
    if not candidates:
        raise ValueError("candidates is empty")
    ids = [single_token_id(lm, c) for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError(f"candidates {candidates} repeat a token")
    batch_size = _check_batch_size(batch_size)

    def compute():
        with lm.threads():
            return _next_token_logprobs(lm, texts, ids, batch_size, progress)

    if cache:
        key = {"kind": "next_token_logprobs", "lm": lm.settings(), "texts": texts, "ids": ids,
               "batch_size": batch_size}
        values = cached_call("logprobs", key, compute)
    else:
        values = compute()
    return torch.tensor(values, dtype=torch.float32)


def yes_probability(logp_yes: Any, logp_no: Any) -> torch.Tensor:
    """p("Yes") / (p("Yes") + p("No")) from the two next-token log-probabilities.

    Equal to sigmoid(logp_yes - logp_no): computed that way so it never overflows or divides
    0 by 0, whatever mass the model put on other tokens. `two_way_share` is the same function
    under a name that fits any two candidates (a pairwise judge's "A" and "B").
    """
    return _two_way_share(logp_yes, logp_no, ("logp_yes", "logp_no"))


def two_way_share(logp_first: Any, logp_second: Any) -> torch.Tensor:
    """p(first) / (p(first) + p(second)) from two next-token log-probabilities, e.g. a pairwise
    judge's "A" and "B": sigmoid(logp_first - logp_second), as `yes_probability` computes it."""
    return _two_way_share(logp_first, logp_second, ("logp_first", "logp_second"))


def _two_way_share(logp_yes: Any, logp_no: Any, names: tuple[str, str]) -> torch.Tensor:
    for name, value in zip(names, (logp_yes, logp_no)):
        if not isinstance(value, torch.Tensor):  # text, None, booleans: refused before torch reads them
            as_numbers(value, name, ndim=None, allow_empty=True, finite=False)
        elif value.dtype == torch.bool:
            raise TypeError(f"{name} holds booleans; pass log-probabilities")
    y = torch.as_tensor(logp_yes, dtype=torch.float32)
    n = torch.as_tensor(logp_no, dtype=torch.float32)
    if y.shape != n.shape:
        raise ValueError(f"{names[0]} {tuple(y.shape)} and {names[1]} {tuple(n.shape)} differ in shape")
    if bool(torch.isnan(y).any() or torch.isnan(n).any()):
        raise ValueError("log-probabilities contain NaN")
    if bool((y > 1e-6).any() or (n > 1e-6).any()):
        raise ValueError("log-probabilities must be <= 0 (did you pass probabilities or logits?)")
    return torch.sigmoid(y - n)


# Direct GenRM's question (Zhang et al. 2024, arXiv 2408.15240), asked zero-shot here.
GENRM_TEMPLATE = """Question: {prompt}
Answer: {response}
Is the answer correct (Yes/No)?"""


def pair_lists(prompts: Sequence[str], responses: Sequence[str]) -> tuple[list[str], list[str]]:
    """`prompts` and `responses` as two lists of equal length; a bare string is refused (it would
    be read one character at a time)."""
    for name, value in (("prompts", prompts), ("responses", responses)):
        if isinstance(value, str):
            raise TypeError(f"{name} must be a list of strings, got a single string")
        if value is None or isinstance(value, (bytes, dict)) or not hasattr(value, "__iter__"):
            raise TypeError(f"{name} must be a list of strings, got {type(value).__name__}")
    prompts, responses = list(prompts), list(responses)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    for name, values in (("prompts", prompts), ("responses", responses)):
        for i, text in enumerate(values):
            if not isinstance(text, str):
                raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
    return prompts, responses


def chat_texts(lm: CausalLM, template: str, prompts: Sequence[str],
               responses: Sequence[str]) -> list[str]:
    """`template` filled with each (prompt, response) and wrapped in the LM's chat format.

    The fields are filled in one pass (`rmcourse.judges.fill_template`, not `str.format`), so
    braces inside a prompt or a response are kept as written.
    """
    _check_lm(lm)
    if not isinstance(template, str):
        raise TypeError(f"template must be a str with the fields {{prompt}} and {{response}}, got "
                        f"{type(template).__name__}")
    prompts, responses = pair_lists(prompts, responses)
    if "{prompt}" not in template or "{response}" not in template:
        raise ValueError("template must contain the fields {prompt} and {response}")
    from rmcourse.judges import fill_template

    return [lm.chat(fill_template(template, prompt=p, response=r)) for p, r in zip(prompts, responses)]


def genrm_rewards(lm: CausalLM, prompts: Sequence[str], responses: Sequence[str],
                  template: str = GENRM_TEMPLATE, batch_size: int = 16,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Generative-verifier rewards: (p("Yes") / (p("Yes") + p("No")), p("Yes") + p("No")).

    The first is the reward; the second is how much of the next-token distribution the two
    answers get at all (a verifier fine-tuned as in GenRM puts nearly all of it there; a
    zero-shot small model does not, hence the renormalisation).
    """
    texts = chat_texts(lm, template, prompts, responses)
    lp = next_token_logprobs(lm, texts, ["Yes", "No"], batch_size=batch_size, progress=progress)
    return yes_probability(lp[:, 0], lp[:, 1]), lp.exp().sum(dim=1)


@torch.no_grad()
def _generate(lm: CausalLM, texts: list[str], max_new_tokens: int, batch_size: int,
              progress: bool) -> list[str]:
    prefix, rows = _encode(lm, texts)
    shared = _Prefix(lm, prefix)
    eos = lm.tokenizer.eos_token_id
    outputs: list[str] = [""] * len(texts)
    batches = _batches([len(r) for r in rows], batch_size)
    for idx in _progress(batches, len(batches), "generating", progress):
        batch = _left_padded(lm, [rows[i] for i in idx], shared.length)
        past = shared.for_batch(len(idx))
        mask, positions = batch["attention_mask"], batch["position_ids"]
        ids = batch["input_ids"]
        new = torch.full((len(idx), max_new_tokens), eos, dtype=torch.long, device=lm.device)
        done = torch.zeros(len(idx), dtype=torch.bool, device=lm.device)
        for step in range(max_new_tokens):
            with lm.autocast():
                out = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                               cache=past, use_cache=True, logits_to_keep=1)
            lm.stats["forward_tokens"] += int(ids.numel())
            token = out.logits[:, -1].float().argmax(-1)
            token = torch.where(done, torch.full_like(token, eos), token)
            new[:, step] = token
            done |= token == eos
            if bool(done.all()):
                break
            past = out.cache
            ids = token[:, None]
            positions = positions[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        for row, i in enumerate(idx):
            toks = new[row].tolist()
            if eos in toks:
                toks = toks[:toks.index(eos)]
            lm.stats["generated_tokens"] += len(toks)
            outputs[i] = lm.tokenizer.decode(toks, skip_special_tokens=True).strip()
    return outputs


def generate(lm: CausalLM, texts: Sequence[str], max_new_tokens: int = 48, batch_size: int = 16,
             progress: bool = False, cache: bool = True) -> list[str]:
    """Greedy continuations of `texts` (deterministic), stopped at end-of-turn or
    `max_new_tokens`; special tokens removed, whitespace stripped. Cached under artifacts/."""
    _check_lm(lm)
    texts = _check_texts(texts)
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or not 1 <= max_new_tokens <= 1024:
        raise ValueError(f"max_new_tokens must be an int in 1..1024, got {max_new_tokens!r}")
    batch_size = _check_batch_size(batch_size)

    def compute():
        with lm.threads():
            return _generate(lm, texts, max_new_tokens, batch_size, progress)

    if not cache:
        return compute()
    key = {"kind": "generate", "lm": lm.settings(), "texts": texts, "max_new_tokens": max_new_tokens,
           "batch_size": batch_size, "decoding": "greedy"}
    return cached_call("generate", key, compute)


def cached_call(namespace: str, key: dict, compute: Callable[[], Any]) -> Any:
    """`compute()`'s JSON-able result, stored in artifacts/ch07-cache/<namespace>-<hash>.json.

    The hash covers the whole `key` (model sha256, texts, settings), so any change recomputes.
    Written atomically; an unreadable cache file is recomputed, never trusted.
    """
    from rmcourse.paths import artifacts_dir

    if not isinstance(namespace, str) or not namespace.isidentifier():
        raise ValueError(f"namespace must be a simple name, got {namespace!r}")
    if not isinstance(key, dict):
        raise TypeError(f"key must be a dict, got {type(key).__name__}")
    blob = json.dumps(key, sort_keys=True, ensure_ascii=False).encode("utf-8")
    digest = hashlib.sha256(blob).hexdigest()[:32]
    path = artifacts_dir(CACHE_FOLDER) / f"{namespace}-{digest}.json"
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if stored.get("key_sha256") == hashlib.sha256(blob).hexdigest():
                return stored["value"]
        except (OSError, ValueError, KeyError, AttributeError):
            pass
    value = compute()
    payload = {"key_sha256": hashlib.sha256(blob).hexdigest(), "value": value}
    text = json.dumps(payload, allow_nan=False)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return value

