"""A small, complete reward-model training loop (the corrected version of the seed's trainer).

What it does, in the order a step runs:
- batches of pairs go through `PairCollator`: chosen and rejected stacked into one batch
  (rewards[:B] are the chosen, rewards[B:] the rejected). On a GPU that is ONE forward, padded to
  the longest row; on a CPU (`forward_chunk_size="auto"`) the 2B rows are sorted by length and
  run through the model 8 at a time, each chunk padded only to its own longest row
  (`rmcourse.tokenization.length_sorted_chunks`): the same pairs and the same loss, less padding.
  A decoder packs each pair in one row instead (`prefix_sharing="auto"`,
  `rmcourse.prefix_sharing`): the prompt is computed once, the rewards are the same;
- loss = `rmcourse.losses.pairwise_loss` (Bradley-Terry, optional Llama-2 margin, optional reward
  centering as in Eisenstein et al. 2023 / TRL's `center_rewards_coefficient`);
- gradient accumulation weights each micro-batch by its share of the pairs in the update, so the
  update equals the one the big batch would make;
- gradient clipping, AdamW (no weight decay on biases and LayerNorm weights: decaying a norm's
  gain or a bias toward zero only fights the normalisation, it does not regularise), linear warmup
  then cosine decay;
- periodic validation, early stopping that restores the best weights (a CPU copy kept in memory),
  a `tqdm.auto` bar, and everything seeded.

Two defaults a practitioner would choose (both as TRL's `RewardConfig`):
- dropout off for the run (`disable_dropout=True`; TRL's `disable_dropout`). Chosen and rejected
  go through one stacked forward, and dropout draws a different mask for each side of a pair:
  that noise lands straight in r(chosen) - r(rejected), the only quantity the loss sees. The
  modules' dropout rates are restored when training ends.
- bf16 autocast where it is faster (`bf16="auto"`): on a CUDA GPU, and on a CPU with bf16 matrix
  units (AMX-BF16 or AVX512-BF16; `rmcourse.device.bf16_supported`); float32 elsewhere. The
  reward head runs in float32 (`rmcourse.device.float32_readout`), so rewards are not rounded to
  bf16's ~3 significant digits, and the loss is computed in float32. On a CPU, attention runs in
  float32 too (`float32_attention`): torch's bf16 CPU flash-attention backward is slower than
  its float32 one and would eat the gain.

No host synchronisation inside a step: losses and rewards stay on the device until a history
row is written (every `log_every` steps).
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from rmcourse.device import autocast, bf16_supported, float32_readout, pick_device, seed_everything
from rmcourse.losses import pairwise_loss
from rmcourse.metrics import pair_collator_for, score_tokenized
from rmcourse.prefix_sharing import prefix_shared_stacked_rewards, resolve_prefix_sharing
from rmcourse.tokenization import length_grouped_batches, length_sorted_chunks, tokenize_pairs

HISTORY_COLUMNS = ["step", "epoch", "lr", "loss", "accuracy", "margin", "reward_mean",
                   "reward_std", "val_loss", "val_accuracy"]


@dataclass
class TrainConfig:
    """Hyper-parameters of `train_reward_model`. Defaults follow common RM practice (1 epoch).

    `batch_size` counts pairs per forward (each pair = 2 sequences); one optimizer step sees
    `batch_size * grad_accum_steps` pairs. `eval_every` and `log_every` count optimizer steps.
    `max_steps`, when set, overrides `epochs`.
    `disable_dropout=True` (default, as TRL) sets every dropout rate of the model to 0 for the run.
    `forward_chunk_size`: rows (sequences) per forward after sorting a step's 2B rows by length;
    None = one stacked forward; "auto" (default) = 8 on a CPU, where a forward costs what its
    padded rows cost, None on a GPU (which wants big batches) and under DDP. It changes only the
    padding, never which pairs meet in a step (unlike `group_by_length`).
    `bf16="auto"` (default) trains under bf16 autocast where `rmcourse.device.bf16_supported`
    says it is faster (CUDA; a CPU with bf16 matrix units), float32 elsewhere; `True` forces
    bf16 autocast (CUDA or CPU; on a CPU without bf16 units it is emulated and slow), `False`
    forces float32.
    `prefix_sharing="auto"` (default) packs each pair as one row [prompt | chosen | rejected]
    for a decoder RewardModel in one process (`rmcourse.prefix_sharing`: same rewards and
    gradients within float32 rounding, the shared prompt computed once); True insists (an encoder
    is refused: not exact there), False always runs the two rows.
    """

    lr: float = 5e-5
    batch_size: int = 16
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    grad_accum_steps: int = 1
    max_length: int = 128
    use_margin: bool = False
    center_rewards_coef: float = 0.0
    eval_every: int | None = None
    early_stopping_patience: int | None = None
    group_by_length: bool = False
    forward_chunk_size: int | str | None = "auto"
    seed: int = 0
    bf16: bool | str = "auto"
    prefix_sharing: bool | str = "auto"
    disable_dropout: bool = True
    progress: bool = True
    log_every: int = 1
    eval_batch_size: int = 32

    def __post_init__(self) -> None:
        def need_int(name: str, minimum: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < minimum:
                raise ValueError(f"{name} must be >= {minimum}, got {value}")

        def need_float(name: str, low: float, high: float = math.inf, low_open: bool = False,
                       optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
                bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
                raise ValueError(f"{name} must be in {bound}, got {value}")

        need_float("lr", 0.0, low_open=True)
        need_int("batch_size", 1)
        need_float("epochs", 0.0, low_open=True)
        need_int("max_steps", 1, optional=True)
        need_float("warmup_ratio", 0.0, 1.0)
        need_float("weight_decay", 0.0)
        need_float("max_grad_norm", 0.0, low_open=True, optional=True)
        need_int("grad_accum_steps", 1)
        need_int("max_length", 8)
        need_float("center_rewards_coef", 0.0)
        need_int("eval_every", 1, optional=True)
        need_int("early_stopping_patience", 1, optional=True)
        need_int("seed", 0)
        need_int("log_every", 1)
        need_int("eval_batch_size", 1)
        for name in ("use_margin", "group_by_length", "progress", "disable_dropout"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.forward_chunk_size not in (None, "auto"):
            if (isinstance(self.forward_chunk_size, bool)
                    or not isinstance(self.forward_chunk_size, int) or self.forward_chunk_size < 1):
                raise ValueError("forward_chunk_size must be a positive int, None or 'auto', got "
                                 f"{self.forward_chunk_size!r}")
        for name in ("bf16", "prefix_sharing"):
            if getattr(self, name) not in (True, False, "auto"):
                raise ValueError(f"{name} must be True, False or 'auto', got {getattr(self, name)!r}")
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise ValueError("early_stopping_patience needs eval_every (how many steps between "
                             "validations)")


@dataclass
class TrainResult:
    """What a run produced. `history` has one row per logged step (columns `HISTORY_COLUMNS`).

    `train_seconds` is the training loop's wall time without validation (logging included);
    `pairs_per_second` = training pairs processed / `train_seconds`.
    """

    history: pd.DataFrame
    best_step: int | None
    best_val_accuracy: float | None
    stopped_early: bool
    pairs_per_second: float
    train_seconds: float
    n_steps: int
    n_train_pairs: int
    restored_best: bool = False
    truncation: Any = None
    config: TrainConfig = field(default_factory=TrainConfig)

    def __repr__(self) -> str:
        best = ("" if self.best_step is None else
                f", best_step={self.best_step}, best_val_accuracy={self.best_val_accuracy:.3f}")
        return (f"TrainResult(n_steps={self.n_steps}, n_train_pairs={self.n_train_pairs}{best}, "
                f"stopped_early={self.stopped_early}, train_seconds={self.train_seconds:.1f}, "
                f"pairs_per_second={self.pairs_per_second:.1f})")

    def plot(self, axes=None):
        """Loss, accuracy and margin against step (validation as dots); returns the figure."""
        import matplotlib.pyplot as plt

        h = self.history
        if axes is None:
            fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
        else:
            fig = axes[0].figure
        val = h.dropna(subset=["val_accuracy"])
        panels = [("loss", "val_loss", "loss"), ("accuracy", "val_accuracy", "pairwise accuracy"),
                  ("margin", None, "mean r(chosen) - r(rejected)")]
        for ax, (col, val_col, title) in zip(axes, panels):
            ax.plot(h["step"], h[col], lw=1, alpha=0.45, label=f"train {col}")
            if len(h) >= 8:  # a moving average makes the trend readable through batch noise
                ax.plot(h["step"], h[col].rolling(max(2, len(h) // 10), min_periods=1).mean(),
                        lw=2, color="C0", label="train (smoothed)")
            if val_col is not None and len(val):
                ax.plot(val["step"], val[val_col], "o-", color="C3", label=f"val {col}")
            if self.best_step is not None and col == "accuracy":
                ax.axvline(self.best_step, color="grey", ls=":", label="best val step")
            ax.set_title(title)
            ax.set_xlabel("optimizer step")
            ax.legend(fontsize=8)
        if "accuracy" in h:
            axes[1].axhline(0.5, color="black", lw=0.6, ls="--")
        fig.tight_layout()
        return fig


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak lr for optimizer step `step` (0-based): linear warmup, then cosine.

    Warmup climbs (step+1)/warmup_steps, so no step is wasted at lr 0 and step warmup_steps-1
    is the peak; the cosine then falls from that peak toward 0, reaching half way at the middle
    of the remaining steps, and the last step keeps a small non-zero lr.
    """
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be an int in [0, {total_steps}], got {warmup_steps!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    peak = max(warmup_steps - 1, 0)
    progress = (step - peak) / (total_steps - peak)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices (and embeddings), none on biases and norm weights."""
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def adamw(params: Any, lr: float) -> torch.optim.Optimizer:
    """AdamW over `params` (tensors or param groups), fused when torch offers it.

    The fused implementation is one kernel over all parameters (CPU and CUDA; what TRL uses): the
    per-tensor default spends ~0.2 s per step on MiniLM on 2 CPU cores.
    """
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused kernel
        return torch.optim.AdamW(params, lr=lr)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """`adamw` at `config.lr` over `param_groups(model, config.weight_decay)`."""
    return adamw(param_groups(model, config.weight_decay), config.lr)


def use_bf16(config: TrainConfig, device: torch.device | str) -> bool:
    """Whether `train_reward_model` trains under bf16 autocast on `device` with `config`."""
    device = torch.device(device)
    if config.bf16 == "auto":
        return bf16_supported(device)
    if config.bf16 is True:
        if device.type not in ("cuda", "cpu"):
            raise ValueError(f"bf16=True needs a CUDA or CPU device, not {device.type}; use "
                             "bf16='auto' to fall back to float32")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("bf16=True but this CUDA GPU has no bf16 support; use bf16='auto'")
        return True
    return False


# Rows per forward on a CPU: a quarter of a default batch (benchmarks/padding_plans.py)
CPU_FORWARD_CHUNK = 8


def forward_chunk_size(config: TrainConfig, device: torch.device | str, world: int = 1) -> int | None:
    """Rows per forward that `config.forward_chunk_size` means on this device (None = all)."""
    if config.forward_chunk_size != "auto":
        return config.forward_chunk_size
    if world > 1 or torch.device(device).type != "cpu":
        return None
    return CPU_FORWARD_CHUNK


def stacked_rewards(model: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device,
                    chunk_size: int | None, padding_side: str = "right") -> torch.Tensor:
    """Rewards [N] of a collated batch (CPU tensors, no margin), moved to `device`: one forward,
    or length-sorted chunks of `chunk_size` rows put back in the batch's row order."""
    n = batch["input_ids"].shape[0]
    if chunk_size is None or chunk_size >= n:
        return model(**{k: v.to(device) for k, v in batch.items()})
    chunks = length_sorted_chunks(batch, chunk_size, padding_side)
    parts = [model(**{k: v.to(device) for k, v in sub.items()}) for _, sub in chunks]
    order = torch.cat([rows for rows, _ in chunks]).to(device)
    return torch.cat(parts)[torch.argsort(order)]  # row i of the batch back at position i


def reward_head(model: torch.nn.Module) -> torch.nn.Module:
    """The layer that turns features into the reward: `classifier` (BERT-style encoders) or
    `score` (decoders) of a transformers `*ForSequenceClassification`, else the last
    `nn.Linear` with one output."""
    hf = getattr(model, "hf", model)
    for name in ("classifier", "score"):
        head = getattr(hf, name, None)
        if isinstance(head, torch.nn.Linear):
            return head
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no reward head (no Linear with one output)")
    return linears[-1]


FLOAT32_ATTENTION = "rmcourse_sdpa_float32"


def _sdpa_float32(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention, computed in float32 and returned in the caller's dtype."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    dtype = query.dtype
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    with torch.autocast(query.device.type, enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(),
                                              attention_mask, **kwargs)
    return out.to(dtype), weights


@contextlib.contextmanager
def float32_attention(model: torch.nn.Module) -> Iterator[bool]:
    """Inside the block, a transformers model with SDPA attention computes attention in float32,
    also under bf16 autocast; restored after. Yields whether it switched.

    Why (CPU only): with torch 2.13 on the course machine (AVX512-BF16), the backward of
    torch's CPU flash attention took 3.4x longer in bf16 than in float32 (MiniLM, 32 sequences
    x 128 tokens, no padding) and ate much of what bf16 matrix multiplications save. With attention in
    float32 and everything else under bf16 autocast, a MiniLM training step took 0.56x the
    float32 step's CPU time at 128 tokens and 0.57x at 256, against 0.70x and 0.60x with bf16
    attention (`benchmarks/cpu_bf16_step.py`). On CUDA, bf16 attention is the fast path; the
    trainer leaves it alone.
    """
    hf = getattr(model, "hf", model)
    config = getattr(hf, "config", None)
    if (getattr(config, "_attn_implementation", None) != "sdpa"
            or not hasattr(hf, "set_attn_implementation")):
        yield False
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(FLOAT32_ATTENTION, _sdpa_float32)
    # transformers builds NO padding mask for an attention name it has no mask function for
    # (it assumes an external backend): register SDPA's mask under the new name too.
    AttentionMaskInterface.register(FLOAT32_ATTENTION, sdpa_mask)
    hf.set_attn_implementation(FLOAT32_ATTENTION)
    try:
        yield True
    finally:
        hf.set_attn_implementation("sdpa")


@contextlib.contextmanager
def dropout_disabled(model: torch.nn.Module) -> Iterator[int]:
    """Set every dropout rate in `model` to 0 inside the block, then restore them.

    Covers `nn.Dropout` modules (BERT's attention reads its rate from one) and the float
    `attention_dropout` attribute decoders such as Llama pass to their attention function.
    Yields how many rates it switched off. TRL's `disable_dropout_in_model` does the same
    without restoring.
    """
    saved: list[tuple[torch.nn.Module, str, float]] = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            saved.append((module, "p", module.p))
        elif isinstance(getattr(module, "attention_dropout", None), float):
            saved.append((module, "attention_dropout", module.attention_dropout))
    try:
        for module, name, _ in saved:
            setattr(module, name, 0.0)
        yield sum(1 for _, _, rate in saved if rate > 0)
    finally:
        for module, name, rate in saved:
            setattr(module, name, rate)


def _tokenizer_of(model: torch.nn.Module):
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise TypeError("model must be an rmcourse RewardModel (it carries its tokenizer); got "
                        f"{type(model).__name__} without a .tokenizer")
    return tokenizer


def _tokenize(ds, tokenizer, max_length: int, name: str, announce: bool = True):
    if ds is None or len(ds) == 0:
        raise ValueError(f"{name} is empty: nothing to train or evaluate on")
    tokenized, report = tokenize_pairs(ds, tokenizer, max_length)
    if announce:
        print(f"{name}: {report}")
    if len(tokenized) == 0:
        raise ValueError(f"{name}: every pair was dropped at max_length={max_length}; "
                         "raise max_length")
    return tokenized, report


def evaluate(model: torch.nn.Module, ds, batch_size: int = 32, max_length: int = 128,
             progress: bool = False) -> dict:
    """Plain Bradley-Terry loss, accuracy (ties wrong), mean margin and tie count on `ds`."""
    tokenized, _ = _tokenize(ds, _tokenizer_of(model), max_length, "eval", announce=False)
    return _evaluate_tokenized(model, tokenized, batch_size, max_length, progress=progress)


def _evaluate_tokenized(model, tokenized, batch_size: int, max_length: int,
                        progress: bool = False) -> dict:
    chosen, rejected = score_tokenized(model, tokenized, batch_size=batch_size,
                                       max_length=max_length, progress=progress)
    # Validation loss is the plain BT loss (no margin, no centering) so runs stay comparable.
    loss = float(pairwise_loss(chosen, rejected))
    diff = chosen.double() - rejected.double()
    return {"loss": loss, "accuracy": int((diff > 0).sum()) / len(diff),
            "margin": float(diff.mean()), "n_ties": int((diff == 0).sum())}


def _batch_order(n_pairs: int, config: TrainConfig, generator: torch.Generator,
                 lengths: list[int] | None) -> list[list[int]]:
    """The micro-batches (lists of row indices) of one epoch, shuffled by the seeded generator."""
    if config.group_by_length:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        return [list(b) for b in length_grouped_batches(lengths, config.batch_size, seed=seed)]
    order = torch.randperm(n_pairs, generator=generator).tolist()
    return [order[i:i + config.batch_size] for i in range(0, n_pairs, config.batch_size)]


def train_reward_model(model: torch.nn.Module, train_ds, val_ds=None,
                       config: TrainConfig | None = None, distributed: Any = None) -> TrainResult:
    """Train `model` (an rmcourse RewardModel) on canonical pairs; returns a `TrainResult`.

    `train_ds`/`val_ds` hold prompt/chosen/rejected (and optionally margin). With `val_ds`, the
    model is validated every `config.eval_every` steps and at the end; with
    `early_stopping_patience`, training stops after that many validations without a better
    accuracy (ties broken by lower loss) and the best weights are put back into `model`.

    `distributed` (a `rmcourse.distributed.DistInfo`, process group already initialised, e.g. by
    `rmcourse.distributed.init_distributed` under torchrun): the forward runs through
    DistributedDataParallel, each rank trains on its own share of every epoch's batches
    (`batch_size` is per rank), and only rank 0 prints and shows progress. Every rank validates
    (same weights, same result, so early stopping agrees). `pairs_per_second` is per rank.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.early_stopping_patience is not None and val_ds is None:
        raise ValueError("early_stopping_patience needs a val_ds to validate on")
    if config.use_margin and "margin" not in getattr(train_ds, "column_names", []):
        raise ValueError("use_margin=True but train_ds has no column 'margin'")
    tokenizer = _tokenizer_of(model)
    seed_everything(config.seed)
    device = pick_device()
    bf16 = use_bf16(config, device)
    if bf16:
        float32_readout(reward_head(model))
    model.to(device)
    with contextlib.ExitStack() as stack:
        if config.disable_dropout:
            stack.enter_context(dropout_disabled(model))
        if bf16 and device.type == "cpu":
            stack.enter_context(float32_attention(model))
        return _train(model, tokenizer, train_ds, val_ds, config, distributed, device, bf16)


def _train(model, tokenizer, train_ds, val_ds, config: TrainConfig, distributed: Any,
           device: torch.device, bf16: bool) -> TrainResult:
    is_main, world, forward_model = True, 1, model
    if distributed is not None and distributed.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        is_main, world = distributed.is_main, distributed.world_size
        forward_model = DistributedDataParallel(
            model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None)

    train_tok, truncation = _tokenize(train_ds, tokenizer, config.max_length, "train",
                                      announce=is_main)
    val_tok = None
    if val_ds is not None:
        val_tok, val_report = _tokenize(val_ds, tokenizer, config.max_length, "val",
                                        announce=False)
        if is_main and (val_report.n_truncated or val_report.n_dropped):
            print(f"val: {val_report}")
    collate = pair_collator_for(model, config.max_length)
    chunk_size = forward_chunk_size(config, device, world)
    sharing = resolve_prefix_sharing(config.prefix_sharing, model, world)
    n_pairs = len(train_tok)
    lengths = list(train_tok["length"]) if config.group_by_length else None
    # Plain Python rows, read once: indexing a Dataset row by row is slow.
    columns = [c for c in train_tok.column_names if c.endswith(("_input_ids", "_token_type_ids"))]
    if config.use_margin:
        columns.append("margin")
    rows = train_tok.select_columns(columns).to_list()

    micro_per_epoch = max(1, math.ceil(n_pairs / config.batch_size) // world)  # per rank
    if config.max_steps is not None:
        total_steps = config.max_steps
    else:
        total_steps = max(1, math.ceil(config.epochs * micro_per_epoch / config.grad_accum_steps))
    warmup_steps = int(round(config.warmup_ratio * total_steps))
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(min(s, total_steps - 1), total_steps, warmup_steps))

    generator = torch.Generator().manual_seed(config.seed)
    epoch_batches: list[list[int]] = []
    micro_seen = 0

    def next_micro_batch() -> list[int]:
        nonlocal epoch_batches
        if not epoch_batches:
            epoch_batches = _batch_order(n_pairs, config, generator, lengths)
            if world > 1:  # same order on every rank (same seed); each keeps its share
                from rmcourse.distributed import shard_batches

                epoch_batches = shard_batches(epoch_batches, distributed)
            epoch_batches = epoch_batches[::-1]
        return epoch_batches.pop()

    history: list[dict] = []
    pending: list[dict] = []  # per-step training stats not yet logged
    best = {"step": None, "accuracy": -1.0, "loss": math.inf, "state": None}
    evals_without_gain = 0
    stopped_early = False
    eval_seconds = 0.0
    pairs_seen = 0
    bar = _progress_bar(total_steps, config.progress and is_main)
    step = 0
    # Training time = the loop's wall time minus validation. Steps are not timed one by one:
    # on a GPU that would need a host sync per step (the kernels run asynchronously).
    _synchronize(device)
    loop_start = time.perf_counter()
    for step in range(total_steps):
        model.train()
        groups = [next_micro_batch() for _ in range(config.grad_accum_steps)]
        n_in_step = sum(len(g) for g in groups)
        optimizer.zero_grad(set_to_none=True)
        step_chosen, step_rejected, step_loss = [], [], []
        for n_micro, indices in enumerate(groups, 1):
            batch = collate([rows[i] for i in indices])
            margin = batch.pop("margin", None)
            if margin is not None:
                margin = margin.to(device)
            b = len(indices)
            # DDP all-reduces gradients in every backward; skip that on all but the last
            # micro-batch of a step (same result: the sum is linear, just less communication).
            sync = (forward_model.no_sync() if world > 1 and n_micro < len(groups)
                    else nullcontext())
            with sync, autocast(device, enabled=bf16):
                # B chosen rows, then B rejected: one forward, or length-sorted chunks, of
                # the rows or (prefix sharing) of the packed pairs
                if sharing:
                    rewards = prefix_shared_stacked_rewards(model, batch, chunk_size)
                else:
                    rewards = stacked_rewards(forward_model, batch, device, chunk_size,
                                              collate.padding_side)
            rewards = rewards.float()
            chosen, rejected = rewards[:b], rewards[b:]
            loss = pairwise_loss(chosen, rejected, margin=margin,
                                 center_coef=config.center_rewards_coef)
            # Weight by this micro-batch's share of the step's pairs: the summed gradient then
            # equals the gradient of the mean loss over all pairs of the step (the big batch).
            (loss * (b / n_in_step)).backward()
            # Kept on the device: float() or .cpu() here would wait for the GPU every micro-step.
            step_loss.append(loss.detach() * (b / n_in_step))
            step_chosen.append(chosen.detach())
            step_rejected.append(rejected.detach())
        if config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        lr_used = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        pairs_seen += n_in_step
        micro_seen += len(groups)
        pending.append({"loss": torch.stack(step_loss).sum(), "n": n_in_step,
                        "chosen": step_chosen, "rejected": step_rejected, "lr": lr_used})

        step_no = step + 1
        last = step_no == total_steps
        is_eval = val_tok is not None and (
            (config.eval_every is not None and step_no % config.eval_every == 0) or last)
        if step_no % config.log_every == 0 or is_eval or last:
            row = _summarise(pending, step_no, micro_seen / micro_per_epoch)
            pending = []
            if is_eval:
                _synchronize(device)  # queued training work counts as training, not validation
                eval_start = time.perf_counter()
                scores = _evaluate_tokenized(model, val_tok, config.eval_batch_size,
                                             config.max_length)
                row["val_loss"], row["val_accuracy"] = scores["loss"], scores["accuracy"]
                better = (scores["accuracy"] > best["accuracy"] or
                          (scores["accuracy"] == best["accuracy"] and scores["loss"] < best["loss"]))
                if better:
                    best.update(step=step_no, accuracy=scores["accuracy"], loss=scores["loss"])
                    evals_without_gain = 0
                    if config.early_stopping_patience is not None:
                        best["state"] = {k: v.detach().to("cpu", copy=True)
                                         for k, v in model.state_dict().items()}
                else:
                    evals_without_gain += 1
                eval_seconds += time.perf_counter() - eval_start
            history.append(row)
            if bar is not None:
                postfix = {"loss": f"{row['loss']:.3f}", "acc": f"{row['accuracy']:.2f}"}
                if is_eval:
                    postfix["val_acc"] = f"{row['val_accuracy']:.2f}"
                bar.set_postfix(postfix, refresh=False)
        if bar is not None:
            bar.update(1)
        if (config.early_stopping_patience is not None
                and evals_without_gain >= config.early_stopping_patience):
            stopped_early = not last
            break
    _synchronize(device)
    train_seconds = time.perf_counter() - loop_start - eval_seconds
    if bar is not None:
        bar.close()

    restored = False
    if best["state"] is not None and best["step"] != step + 1:
        model.load_state_dict(best["state"])
        restored = True
    model.eval()
    frame = pd.DataFrame(history, columns=HISTORY_COLUMNS)
    return TrainResult(
        history=frame,
        best_step=best["step"],
        best_val_accuracy=None if best["step"] is None else best["accuracy"],
        stopped_early=stopped_early,
        pairs_per_second=pairs_seen / train_seconds if train_seconds > 0 else float("nan"),
        train_seconds=train_seconds,
        n_steps=step + 1,
        n_train_pairs=n_pairs,
        restored_best=restored,
        truncation=truncation,
        config=copy.deepcopy(config),
    )


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _summarise(pending: list[dict], step: int, epoch: float) -> dict:
    """One history row from the steps since the last log (pair-weighted means); the one place
    the step statistics come back to the host."""
    chosen = torch.cat([c for p in pending for c in p["chosen"]]).float().cpu()
    rejected = torch.cat([r for p in pending for r in p["rejected"]]).float().cpu()
    losses = torch.stack([p["loss"] for p in pending]).double().cpu().tolist()
    n = sum(p["n"] for p in pending)
    rewards = torch.cat([chosen, rejected])
    diff = chosen.double() - rejected.double()
    return {
        "step": step,
        "epoch": epoch,
        "lr": pending[-1]["lr"],
        "loss": sum(loss * p["n"] for loss, p in zip(losses, pending)) / n,
        "accuracy": int((diff > 0).sum()) / len(diff),
        "margin": float(diff.mean()),
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std(unbiased=False)),
        "val_loss": np.nan,
        "val_accuracy": np.nan,
    }


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="step")
