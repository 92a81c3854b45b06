"""Small reward heads on fixed text features: reward-model experiments that run in seconds on a CPU.

Chapter 06 needs dozens of training runs (epochs, regularisers, K-wise batching, ensembles,
proxies trained on different amounts of data). Fine-tuning MiniLM for each would take hours on
two CPU cores, so the chapter computes features once and trains small heads on them:

* `hashed_features`: hashed counts of the response's words and word pairs, plus the prompt's
  words in a separate block (log1p-scaled; crc32 hashing, so the same text always gives the
  same vector). Cheap and transparent: the filler sentences of the preference world are visible
  to it, which is exactly what makes a spurious "longer is better" shortcut learnable.
* `encoder_features`: the frozen [CLS] (encoders) or last-token (decoders) hidden state of a
  `RewardModel`'s backbone; slower, used on a GPU.

The training loop (`train_head`) is the same Bradley-Terry loss as `rmcourse.losses`, with the
knobs the chapter studies: epochs, weight decay, dropout, label smoothing, Llama 2 margins,
reward centering and early stopping that puts the best weights back. `train_kwise_head` trains
InstructGPT style: one batch element = all K responses of one prompt, loss averaged over its
C(K, 2) pairs (`rmcourse.losses.kwise_loss`). `train_ensemble_heads` trains several heads jointly
on the uncertainty-weighted pair loss of `rmcourse.ensembles`, with the weights detached (right)
or not (the seed's mistake: the members then learn to disagree).
"""
from __future__ import annotations

import copy
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.bootstrap import as_numbers
from rmcourse.device import one_thread
from rmcourse.ensembles import uncertainty_weighted_pair_loss
from rmcourse.losses import kwise_loss, pairwise_loss
from rmcourse.validation import as_count, as_number

__all__ = [
    "hashed_features",
    "encoder_features",
    "PairFeatures",
    "pair_features",
    "RewardHead",
    "HeadRun",
    "train_head",
    "evaluate_head",
    "score_head",
    "kwise_pairs",
    "train_kwise_head",
    "train_ensemble_heads",
]

# The heads' matrices are tiny: extra threads add no speed, and when the cores are shared with
# other work the threads wait on each other (measured: 30x slower with 2 threads on a busy 2-core
# machine). `rmcourse.device.one_thread` runs a function with one intra-op thread.
_one_thread = one_thread


_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def _bucket(token: str, dim: int) -> int:
    return zlib.crc32(token.encode("utf-8")) % dim


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got a single string")
    if texts is None or isinstance(texts, (bytes, dict)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(t).__name__}")
    return out


def hashed_features(prompts: Sequence[str], responses: Sequence[str], dim: int = 2048,
                    prompt_dim: int = 256) -> torch.Tensor:
    """Float32 [N, dim + prompt_dim]: log1p counts of hashed response words and word pairs
    (first `dim` columns) and of hashed prompt words (last `prompt_dim` columns)."""
    prompts = _check_texts(prompts, "prompts")
    responses = _check_texts(responses, "responses")
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    for name, value in (("dim", dim), ("prompt_dim", prompt_dim)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for i, r in enumerate(responses):
        if not r.strip():
            raise ValueError(f"empty text in response {i}")
    out = np.zeros((len(responses), dim + prompt_dim), dtype=np.float32)
    cache: dict[str, int] = {}
    for i, (prompt, response) in enumerate(zip(prompts, responses)):
        words = _WORD.findall(response.lower())
        for tok in words + [a + " " + b for a, b in zip(words, words[1:])]:
            j = cache.get(tok)
            if j is None:
                j = cache[tok] = _bucket(tok, dim)
            out[i, j] += 1.0
        for tok in _WORD.findall(prompt.lower()):
            out[i, dim + _bucket("p:" + tok, prompt_dim)] += 1.0
    return torch.from_numpy(np.log1p(out))


@torch.no_grad()
def encoder_features(model: Any, prompts: Sequence[str], responses: Sequence[str],
                     batch_size: int = 64, max_length: int | None = None) -> torch.Tensor:
    """Frozen backbone features of a `RewardModel`: the hidden state its head reads, [N, H] on CPU."""
    from rmcourse.pooling import first_token_pool, last_token_pool
    from rmcourse.tokenization import encode_pair_texts, length_grouped_batches, pad_batch

    if not hasattr(model, "hf") or not hasattr(model, "tokenizer"):
        raise TypeError(f"model must be an rmcourse RewardModel, got {type(model).__name__}")
    prompts = _check_texts(prompts, "prompts")
    responses = _check_texts(responses, "responses")
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    _count(batch_size, "batch_size")
    if max_length is not None and max_length is not False and max_length != 0:  # 0: the model's own
        _count(max_length, "max_length", low=2)
    max_length = max_length or model.max_length
    ids, types, _ = encode_pair_texts(model.tokenizer, prompts, responses, max_length,
                                      return_token_type_ids=True)
    if any(x is None for x in ids):
        raise ValueError(f"a response does not fit max_length={max_length}; raise max_length")
    base = model.hf.base_model
    was_training = model.training
    model.eval()
    feats: torch.Tensor | None = None
    try:
        side = None if model.is_decoder else "right"
        for idx in length_grouped_batches([len(x) for x in ids], batch_size, shuffle=False):
            batch_types = [types[i] for i in idx] if types[idx[0]] is not None else None
            batch = pad_batch(model.tokenizer, [ids[i] for i in idx], batch_types, padding_side=side)
            batch = {k: v.to(model.device) for k, v in batch.items()}
            hidden = base(**batch).last_hidden_state
            pool = last_token_pool if model.is_decoder else first_token_pool
            h = pool(hidden, batch["attention_mask"]).float().cpu()
            if feats is None:
                feats = torch.empty(len(ids), h.shape[-1])
            feats[torch.as_tensor(idx)] = h
    finally:
        model.train(was_training)
    assert feats is not None
    return feats


def _count(value: Any, name: str, low: int = 1) -> int:
    """An int >= low: TypeError for a float, a str or a bool; ValueError below `low`."""
    as_count(value, name, low=-2 ** 62)
    if value < low:
        raise ValueError(f"{name} must be a positive int, got {value!r}" if low == 1
                         else f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _feature_matrix(x: Any, name: str, *, width: int | None = None, dtype: torch.dtype | None = None,
                    finite: bool = True) -> torch.Tensor:
    """`x` checked to be a floating-point torch.Tensor [rows, features] (shared by the modules
    that train small models on features: heads, odin, objectives, process).

    `width`: the number of features the model reads; `dtype`: the model weights' dtype (a
    float64 matrix fed to float32 weights is a torch error otherwise); `finite`: refuse NaN / inf,
    which would turn every weight into NaN without an error.
    """
    if not isinstance(x, torch.Tensor):
        hint = " (torch.from_numpy(x).float() converts an array)" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"{name} must be a torch.Tensor [rows, features], got {type(x).__name__}{hint}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor [rows, features], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floats, got a {x.dtype} tensor (call .float() on it)")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} is {x.dtype} but the model's weights are {dtype}: convert it "
                        f"with .to({dtype})")
    if width is not None and x.shape[1] != width:
        raise ValueError(f"{name} has {x.shape[1]} features per row but the model reads {width}: "
                         "the model and every feature matrix must come from the same featurizer "
                         "(same dim)")
    if finite and x.numel():
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            row, col = (int(v) for v in bad.nonzero()[0])
            raise ValueError(f"{name} has a non-finite value ({float(x[row, col])}) at row {row}, "
                             f"column {col}")
    return x


def _model_input(module: Any) -> tuple[int | None, torch.dtype | None]:
    """(features the module reads, its weights' dtype) from its first linear layer."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return m.in_features, m.weight.dtype
    return None, None


def _check_pairs(pairs: Any, name: str, *, width: int | None = None,
                 dtype: torch.dtype | None = None, finite: bool = True) -> "PairFeatures":
    if not isinstance(pairs, PairFeatures):
        hint = ""
        if isinstance(pairs, (tuple, list)) and len(pairs) == 2:
            hint = ": wrap the two matrices, PairFeatures(X_chosen, X_rejected)"
        raise TypeError(f"{name} must be PairFeatures, got {type(pairs).__name__}{hint}")
    _feature_matrix(pairs.chosen, f"{name}.chosen", width=width, dtype=dtype, finite=finite)
    _feature_matrix(pairs.rejected, f"{name}.rejected", width=width, dtype=dtype, finite=finite)
    return pairs


def _check_module(head: Any, name: str = "head") -> nn.Module:
    if not isinstance(head, nn.Module):
        raise TypeError(f"{name} must be a torch nn.Module (e.g. a RewardHead), got {type(head).__name__}")
    return head


@dataclass
class PairFeatures:
    """Features of the chosen and rejected responses of N pairs (+ optional per-pair columns)."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    margin: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("chosen", "rejected"):
            x = getattr(self, name)
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name} must be a 2-D torch.Tensor [pairs, features], got "
                                f"{type(x).__name__}")
            if x.ndim != 2:
                raise ValueError(f"{name} must be a 2-D tensor [pairs, features]")
        if self.chosen.shape != self.rejected.shape:
            raise ValueError(f"chosen {tuple(self.chosen.shape)} and rejected "
                             f"{tuple(self.rejected.shape)} features differ in shape")
        if self.chosen.shape[0] == 0:
            raise ValueError("no pairs")
        if self.margin is not None:
            if not isinstance(self.margin, torch.Tensor):  # text, None or booleans: a clear error
                as_numbers(self.margin, "margin", ndim=None, allow_empty=True, finite=False)
            self.margin = torch.as_tensor(self.margin, dtype=torch.float32)
            if self.margin.shape != (len(self),):
                raise ValueError(f"margin must have one value per pair ({len(self)})")

    def __len__(self) -> int:
        return self.chosen.shape[0]

    def subset(self, index) -> "PairFeatures":
        """The pairs at `index` (a slice, a list of ints or a bool mask)."""
        index = torch.as_tensor(index) if not isinstance(index, slice) else index
        return PairFeatures(self.chosen[index], self.rejected[index],
                            None if self.margin is None else self.margin[index])

    def flipped(self, mask) -> "PairFeatures":
        """Swap chosen and rejected where `mask` is True (simulated label noise)."""
        mask = torch.as_tensor(mask, dtype=torch.bool)
        if mask.shape != (len(self),):
            raise ValueError(f"mask must have one entry per pair ({len(self)})")
        m = mask[:, None]
        return PairFeatures(torch.where(m, self.rejected, self.chosen),
                            torch.where(m, self.chosen, self.rejected), self.margin)


def pair_features(ds: Any, featurize=hashed_features, with_margin: bool = True) -> PairFeatures:
    """Features of a canonical pair dataset (prompt, chosen, rejected[, margin]) in one call."""
    names = getattr(ds, "column_names", None) or (list(ds.columns) if hasattr(ds, "columns") else None)
    if names is None:
        hint = (": wrap a list of row dicts as datasets.Dataset.from_list(rows)"
                if isinstance(ds, list) and ds and isinstance(ds[0], dict) else "")
        raise TypeError(f"ds must be a datasets.Dataset or DataFrame, got {type(ds).__name__}{hint}")
    for col in ("prompt", "chosen", "rejected"):
        if col not in names:
            raise ValueError(f"missing column {col!r}")
    prompts = list(ds["prompt"])
    both = featurize(prompts + prompts, list(ds["chosen"]) + list(ds["rejected"]))
    n = len(prompts)
    margin = torch.tensor(list(ds["margin"]), dtype=torch.float32) if with_margin and "margin" in names else None
    return PairFeatures(both[:n], both[n:], margin)


class RewardHead(nn.Module):
    """A scalar reward on a feature vector: linear (`hidden=0`) or one hidden layer with dropout."""

    def __init__(self, in_dim: int, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        _count(in_dim, "in_dim")
        _count(hidden, "hidden", low=0)
        dropout = as_number(dropout, "dropout")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if hidden == 0:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, 1))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(),
                                     nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass
class HeadRun:
    """A trained head and its per-epoch history (epoch 0 = before training)."""

    head: RewardHead
    history: pd.DataFrame
    best_epoch: int | None = None
    restored_best: bool = False
    forwards: int = 0  # response forward passes spent in training
    extra: dict = field(default_factory=dict)
    steps: int = 0  # optimizer steps taken


@_one_thread
@torch.no_grad()
def score_head(head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Rewards of a feature matrix in eval mode (dropout off), float32 [N]."""
    width, dtype = _model_input(_check_module(head))
    _feature_matrix(features, "features", width=width, dtype=dtype)
    return _score(head, features)


@torch.no_grad()
def _score(head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    was = head.training
    head.eval()
    try:
        return head(features).float()
    finally:
        head.train(was)


@_one_thread
@torch.no_grad()
def evaluate_head(head: nn.Module, pairs: PairFeatures) -> dict:
    """Plain BT loss, accuracy (ties wrong), mean margin and reward mean/std on `pairs`."""
    width, dtype = _model_input(_check_module(head))
    _check_pairs(pairs, "pairs", width=width, dtype=dtype)
    return _evaluate(head, pairs)


@torch.no_grad()
def _evaluate(head: nn.Module, pairs: PairFeatures) -> dict:
    c, r = _score(head, pairs.chosen), _score(head, pairs.rejected)
    rewards = torch.cat([c, r])
    return {"loss": float(pairwise_loss(c, r)), "accuracy": float((c > r).float().mean()),
            "margin": float((c - r).mean()), "reward_mean": float(rewards.mean()),
            "reward_std": float(rewards.std(unbiased=False))}


def _smoothed_loss(c: torch.Tensor, r: torch.Tensor, margin, smoothing: float,
                   center_coef: float) -> torch.Tensor:
    loss = pairwise_loss(c, r, margin=margin, reduction="none")
    if smoothing:
        # label smoothing for a pairwise label: with probability eps the label is the other way
        loss = (1 - smoothing) * loss + smoothing * pairwise_loss(r, c, reduction="none")
    loss = loss.mean()
    if center_coef:
        loss = loss + center_coef * torch.mean((c + r) ** 2)
    return loss


def _check_hparams(epochs: int, batch_size: int, lr: float, weight_decay: float,
                   label_smoothing: float, center_coef: float, patience: int | None,
                   batch_name: str = "batch_size") -> None:
    _count(epochs, "epochs")
    _count(batch_size, batch_name)
    lr = as_number(lr, "lr")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if as_number(weight_decay, "weight_decay") < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not 0.0 <= as_number(label_smoothing, "label_smoothing") < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if as_number(center_coef, "center_coef") < 0:
        raise ValueError(f"center_coef must be >= 0, got {center_coef}")
    if patience is not None:
        _count(patience, "patience")


def _history_row(epoch: int, head: nn.Module, train: PairFeatures, val: PairFeatures | None,
                 monitor: dict | None = None) -> dict:
    tr = _evaluate(head, train)
    row = {"epoch": epoch, "train_loss": tr["loss"], "train_accuracy": tr["accuracy"],
           "reward_mean": tr["reward_mean"], "reward_std": tr["reward_std"]}
    if val is not None:
        va = _evaluate(head, val)
        row.update(val_loss=va["loss"], val_accuracy=va["accuracy"])
    for name, pairs in (monitor or {}).items():
        m = _evaluate(head, pairs)
        row.update({f"{name}_loss": m["loss"], f"{name}_accuracy": m["accuracy"]})
    return row


def _check_monitor(monitor, width: int | None = None, dtype: torch.dtype | None = None) -> None:
    if monitor is None:
        return
    if not isinstance(monitor, dict) or not all(isinstance(v, PairFeatures) for v in monitor.values()):
        raise TypeError("monitor must be a dict of name -> PairFeatures")
    clash = {"train", "val"} & set(monitor)
    if clash:
        raise ValueError(f"monitor name {sorted(clash)[0]!r} is taken; pick another")
    for name, pairs in monitor.items():
        _check_pairs(pairs, f"monitor[{name!r}]", width=width, dtype=dtype)


def _early_stop_update(best: dict, row: dict, head: nn.Module) -> bool:
    """Track the best validation loss; returns True when this epoch improved it."""
    if row["val_loss"] < best["loss"] - 1e-6:
        best.update(loss=row["val_loss"], epoch=row["epoch"], state=copy.deepcopy(head.state_dict()))
        return True
    return False


@_one_thread
def train_head(train: PairFeatures, val: PairFeatures | None = None, *, hidden: int = 64,
               dropout: float = 0.0, epochs: int = 1, batch_size: int = 32, lr: float = 3e-3,
               weight_decay: float = 0.0, label_smoothing: float = 0.0, use_margin: bool = False,
               center_coef: float = 0.0, patience: int | None = None, seed: int = 0,
               head: RewardHead | None = None, monitor: dict | None = None) -> HeadRun:
    """Train a `RewardHead` on pairs with AdamW; history holds one row per epoch (0 = untrained).

    With `patience` (needs `val`), training stops after that many epochs without a lower
    validation loss and the best epoch's weights are copied back into the head. `monitor`
    ({name: PairFeatures}) adds `<name>_loss` / `<name>_accuracy` columns, evaluated each epoch
    but never used for decisions (e.g. a clean test set).
    """
    _check_hparams(epochs, batch_size, lr, weight_decay, label_smoothing, center_coef, patience)
    if head is not None:
        width, dtype = _model_input(_check_module(head))
    else:
        width, dtype = None, torch.float32  # the new RewardHead's weights
    _check_pairs(train, "train", width=width, dtype=dtype)
    width = train.chosen.shape[1]
    if val is not None:
        _check_pairs(val, "val", width=width, dtype=dtype)
    _check_monitor(monitor, width, dtype)
    if patience is not None and val is None:
        raise ValueError("patience needs a val set to watch")
    if use_margin and train.margin is None:
        raise ValueError("use_margin=True but the training pairs have no margin")
    if use_margin:
        bad = ~torch.isfinite(train.margin)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(f"train.margin has a non-finite value ({float(train.margin[i])}) at pair {i}")
    torch.manual_seed(seed)
    head = head if head is not None else RewardHead(train.chosen.shape[1], hidden, dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    rows = [_history_row(0, head, train, val, monitor)]
    best = {"loss": math.inf, "epoch": None, "state": None}
    if val is not None:
        _early_stop_update(best, rows[0], head)
    since_best, forwards, steps = 0, 0, 0
    for epoch in range(1, epochs + 1):
        head.train()
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), batch_size):
            idx = order[start:start + batch_size]
            b = len(idx)
            rewards = head(torch.cat([train.chosen[idx], train.rejected[idx]]))  # one forward
            margin = train.margin[idx] if use_margin else None
            loss = _smoothed_loss(rewards[:b], rewards[b:], margin, label_smoothing, center_coef)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            forwards += 2 * b
            steps += 1
        rows.append(_history_row(epoch, head, train, val, monitor))
        if val is not None:
            since_best = 0 if _early_stop_update(best, rows[-1], head) else since_best + 1
            if patience is not None and since_best >= patience:
                break
    restored = False
    if patience is not None and best["state"] is not None and best["epoch"] != rows[-1]["epoch"]:
        head.load_state_dict(best["state"])
        restored = True
    head.eval()
    return HeadRun(head=head, history=pd.DataFrame(rows), best_epoch=best["epoch"],
                   restored_best=restored, forwards=forwards, steps=steps)


def kwise_pairs(features: Sequence[torch.Tensor], scores: Sequence[Sequence[float]]) -> PairFeatures:
    """All C(K, 2) (better, worse) pairs of every group: features[g] is [K_g, D], scores[g] [K_g].

    Higher score = preferred; equal scores make no pair.
    """
    chosen, rejected = [], []
    for name, value in (("features", features), ("scores", scores)):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list with one entry per prompt group, got "
                            f"{type(value).__name__}")
    if len(features) != len(scores):
        raise ValueError(f"{len(features)} feature groups but {len(scores)} score lists")
    width = None
    for g, (x, s) in enumerate(zip(features, scores)):
        _feature_matrix(x, f"features[{g}]", width=width)
        width = x.shape[1]
        as_numbers(s, f"scores[{g}]", allow_empty=True)  # text, NaN or booleans: refused
        s = torch.as_tensor(s, dtype=torch.float32)
        if x.ndim != 2 or x.shape[0] != s.shape[0]:
            raise ValueError(f"group {g}: features {tuple(x.shape)} do not match {s.shape[0]} scores")
        i, j = torch.triu_indices(len(s), len(s), offset=1)
        keep = s[i] != s[j]
        i, j = i[keep], j[keep]
        better = torch.where(s[i] > s[j], i, j)
        worse = torch.where(s[i] > s[j], j, i)
        chosen.append(x[better])
        rejected.append(x[worse])
    return PairFeatures(torch.cat(chosen), torch.cat(rejected))


@_one_thread
def train_kwise_head(features: Sequence[torch.Tensor], scores: Sequence[Sequence[float]],
                     val: PairFeatures | None = None, *, hidden: int = 64, dropout: float = 0.0,
                     epochs: int = 1, prompts_per_batch: int = 8, lr: float = 3e-3,
                     weight_decay: float = 0.0, seed: int = 0) -> HeadRun:
    """InstructGPT-style K-wise training: each batch element is one prompt's K responses.

    Each response is scored once per epoch (K forwards per prompt instead of 2 * C(K, 2)), and the
    prompt's loss is the mean of -log sigmoid(r_better - r_worse) over its C(K, 2) pairs, so a
    prompt with many responses does not outweigh the others (`rmcourse.losses.kwise_loss`).
    History rows are per epoch, with the train metrics computed on all C(K, 2) pairs.
    """
    _check_hparams(epochs, prompts_per_batch, lr, weight_decay, 0.0, 0.0, None,
                   batch_name="prompts_per_batch")
    all_pairs = kwise_pairs(features, scores)
    for g, x in enumerate(features):
        _feature_matrix(x, f"features[{g}]", dtype=torch.float32, finite=False)
    if val is not None:
        _check_pairs(val, "val", width=all_pairs.chosen.shape[1], dtype=torch.float32)
    torch.manual_seed(seed)
    head = RewardHead(all_pairs.chosen.shape[1], hidden, dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    rows = [_history_row(0, head, all_pairs, val)]
    forwards, steps = 0, 0
    for epoch in range(1, epochs + 1):
        head.train()
        order = torch.randperm(len(features), generator=gen).tolist()
        for start in range(0, len(order), prompts_per_batch):
            groups = order[start:start + prompts_per_batch]
            sizes = [features[g].shape[0] for g in groups]
            rewards = head(torch.cat([features[g] for g in groups]))  # each response scored once
            forwards += sum(sizes)
            group_scores = [scores[g] for g in groups]
            if not any(len(set(np.asarray(s).tolist())) > 1 for s in group_scores):
                continue  # no strict pair in these prompts
            loss = kwise_loss(list(torch.split(rewards, sizes)), group_scores)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        rows.append(_history_row(epoch, head, all_pairs, val))
    head.eval()
    return HeadRun(head=head, history=pd.DataFrame(rows), forwards=forwards, steps=steps,
                   extra={"n_pairs": len(all_pairs)})


@_one_thread
def train_ensemble_heads(train: PairFeatures, n_members: int = 5, *, detach_weights: bool = True,
                         hidden: int = 64, epochs: int = 1, batch_size: int = 32,
                         lr: float = 3e-3, seed: int = 0) -> list[RewardHead]:
    """Train `n_members` heads jointly on the uncertainty-weighted pair loss (one optimizer).

    Each step scores the batch with every member and minimises
    mean_i w_i * -log sigmoid(mean_c_i - mean_r_i), w_i = 1 / (1 + var_c_i + var_r_i)
    (`rmcourse.ensembles.uncertainty_weighted_pair_loss`). With `detach_weights=False` (the seed
    note's version) the gradient also flows through w: since the loss term is positive, lowering
    it by raising the members' variance is always available, and gradient descent takes it.
    """
    _count(n_members, "n_members", low=2)
    _check_hparams(epochs, batch_size, lr, 0.0, 0.0, 0.0, None)
    _check_pairs(train, "train", dtype=torch.float32)
    torch.manual_seed(seed)
    heads = nn.ModuleList([RewardHead(train.chosen.shape[1], hidden) for _ in range(n_members)])
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    heads.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        for start in range(0, len(train), batch_size):
            idx = order[start:start + batch_size]
            b = len(idx)
            x = torch.cat([train.chosen[idx], train.rejected[idx]])
            rewards = torch.stack([h(x) for h in heads])  # [members, 2b]
            loss = uncertainty_weighted_pair_loss(rewards[:, :b], rewards[:, b:],
                                                  detach_weights=detach_weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    heads.eval()
    return list(heads)
