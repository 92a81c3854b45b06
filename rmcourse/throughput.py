"""Measure training speed honestly: pairs/s, real tokens/s, padding waste, peak memory, MFU.

The chapter 04 ladder changes one thing at a time and measures each configuration the same way:
a warm-up step first (allocators, oneDNN/cuBLAS kernel choice and torch.compile happen there and
would otherwise be billed to the first config), then the timed steps, with CUDA synchronised
before the clock stops.

- Tokens/s counts REAL tokens (attention_mask == 1). Padded positions cost compute but teach the
  model nothing, so a config that pads more looks worse here, as it should.
- Peak memory: on CUDA `torch.cuda.max_memory_allocated` (tensors only; reset before each config).
  On Linux CPUs the process's peak resident set size (VmHWM in /proc/self/status, reset through
  /proc/self/clear_refs): it includes the Python process, the model and the optimizer state, not
  only activations, so compare configs by their difference. Elsewhere it is reported as unknown.
- Model FLOPs utilisation (MFU, Chowdhery et al. 2022, PaLM, arXiv 2204.02311, appendix B): the
  FLOPs a training step needs, about 6 x parameters x tokens (2 for the forward, 4 for the
  backward; Kaplan et al. 2020, arXiv 2001.08361), per second, over the device's peak dense bf16
  FLOP/s. Only matrix-multiplying parameters count, so embeddings (a lookup) are left out, and
  attention's own FLOPs are ignored (small at these lengths). Peaks come from NVIDIA datasheets.
"""
from __future__ import annotations

import math
import os
import time
import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

__all__ = [
    "PEAK_BF16_TFLOPS",
    "ThroughputReport",
    "count_parameters",
    "real_and_padded_tokens",
    "reset_peak_memory",
    "peak_memory",
    "peak_bf16_flops",
    "model_flops_utilization",
    "stacked_forward",
    "separate_forward",
    "measure_training",
    "fastest_steps",
    "measure_interleaved",
    "environment_summary",
]

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from NVIDIA's datasheets. Matched by
# substring of torch.cuda.get_device_name(); the first match wins, so specific names come first.
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,        # H200 SXM datasheet (same compute as H100 SXM)
    "H100 PCIe": 756.0,   # H100 PCIe datasheet
    "H100 NVL": 835.0,    # H100 NVL datasheet
    "H100": 989.0,        # H100 SXM ("NVIDIA H100 80GB HBM3") datasheet
    "A100": 312.0,        # A100 datasheet (SXM and PCIe)
    "L40S": 362.0,        # L40S datasheet
    "L4": 121.0,          # L4 datasheet
    "RTX 4090": 165.2,    # Ada whitepaper, FP16/BF16 with FP32 accumulate
}


@dataclass(frozen=True)
class ThroughputReport:
    """Timed training steps of one configuration (warm-up steps excluded)."""

    name: str
    n_steps: int
    n_pairs: int
    real_tokens: int
    padded_tokens: int
    seconds: float
    peak_memory_bytes: int | None = None
    memory_kind: str = "unknown"
    mfu: float | None = None
    step_seconds: tuple[float, ...] = ()  # each timed step's wall time; they sum to `seconds`

    @property
    def pairs_per_second(self) -> float:
        return self.n_pairs / self.seconds

    @property
    def tokens_per_second(self) -> float:
        """Real (non-pad) tokens per second."""
        return self.real_tokens / self.seconds

    @property
    def padding_waste(self) -> float:
        """Share of the computed token positions that were padding."""
        return 1.0 - self.real_tokens / self.padded_tokens

    def as_row(self) -> dict:
        """A flat dict for a pandas DataFrame row."""
        row = asdict(self)
        row.pop("step_seconds")
        row.update(pairs_per_s=self.pairs_per_second, tokens_per_s=self.tokens_per_second,
                   padding_waste=self.padding_waste,
                   peak_memory_mib=None if self.peak_memory_bytes is None
                   else self.peak_memory_bytes / 2**20)
        return row


def count_parameters(model: torch.nn.Module, include_embeddings: bool = False) -> int:
    """Trainable parameters; embedding tables are left out by default (they do no matmul)."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    skip: set[int] = set()
    if not include_embeddings:
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                skip.update(id(p) for p in module.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in skip)


def real_and_padded_tokens(attention_mask: torch.Tensor) -> tuple[int, int]:
    """(real tokens, all positions) of a padded batch's attention mask."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
    if attention_mask.dim() != 2:
        raise ValueError(f"attention_mask must be [N, L], got shape {tuple(attention_mask.shape)}")
    return int(attention_mask.sum()), attention_mask.numel()


# ---------------------------------------------------------------- memory
_STATUS = "/proc/self/status"


def _read_hwm_bytes() -> int | None:
    try:
        with open(_STATUS) as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak: CUDA's allocator counter, or the process's peak RSS on Linux."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    _release_freed_memory()
    try:  # writing "5" resets VmHWM to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so the next peak starts from what is in use."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(device: torch.device | str) -> tuple[int | None, str]:
    """(bytes or None, what was measured) since the last `reset_peak_memory`."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "CUDA max_memory_allocated"
    value = _read_hwm_bytes()
    if value is None:
        return None, "unknown (no /proc/self/status on this OS)"
    return value, "process peak RSS (VmHWM)"


# ---------------------------------------------------------------- FLOPs
def peak_bf16_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a CUDA device by name, or None when the table does not know it."""
    if not isinstance(device_name, str):
        raise TypeError(f"device_name must be a str, got {type(device_name).__name__}")
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def model_flops_utilization(n_params: int, tokens_per_second: float, peak_flops: float) -> float:
    """6 * n_params * tokens_per_second / peak_flops: the share of the device's peak doing useful matmuls."""
    if isinstance(n_params, bool) or not isinstance(n_params, int) or n_params < 1:
        raise ValueError(f"n_params must be a positive int, got {n_params!r}")
    for name, value in (("tokens_per_second", tokens_per_second), ("peak_flops", peak_flops)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if tokens_per_second < 0:
        raise ValueError(f"tokens_per_second must be >= 0, got {tokens_per_second}")
    if peak_flops <= 0:
        raise ValueError(f"peak_flops must be > 0, got {peak_flops}")
    return 6.0 * n_params * tokens_per_second / peak_flops


# ---------------------------------------------------------------- forwards
def _inputs(batch: Mapping[str, torch.Tensor], rows: slice, device: torch.device,
            trim: bool) -> dict[str, torch.Tensor]:
    mask = batch["attention_mask"][rows]
    width = int(mask.sum(dim=1).max()) if trim else mask.shape[1]  # right padding: cut pad columns
    out = {"input_ids": batch["input_ids"][rows, :width], "attention_mask": mask[:, :width]}
    if "token_type_ids" in batch:
        out["token_type_ids"] = batch["token_type_ids"][rows, :width]
    return {k: v.to(device, non_blocking=True) for k, v in out.items()}


def _check_batch(batch: Any) -> int:
    if not isinstance(batch, Mapping) or "input_ids" not in batch or "attention_mask" not in batch:
        raise ValueError("batch must be a PairCollator dict with 'input_ids' and 'attention_mask'")
    n = batch["input_ids"].shape[0]
    if n % 2 or n == 0:
        raise ValueError(f"a pair batch has an even number of rows (B chosen, then B rejected), got {n}")
    return n // 2


def stacked_forward(model: torch.nn.Module, batch: Mapping[str, torch.Tensor],
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ONE forward over the [2B, L] batch; rows 0..B-1 are chosen, B..2B-1 rejected."""
    b = _check_batch(batch)
    device = torch.device(device) if device is not None else batch["input_ids"].device
    rewards = model(**_inputs(batch, slice(None), device, trim=False))
    return rewards[:b], rewards[b:]


def separate_forward(model: torch.nn.Module, batch: Mapping[str, torch.Tensor],
                     device: torch.device | str | None = None,
                     trim: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed's TWO forwards, chosen then rejected (errata 4).

    `trim=True` cuts each half to its own longest row (dynamic padding); `trim=False` keeps the
    batch's width (with a fixed `pad_to=512` batch: the seed's exact cost).
    """
    b = _check_batch(batch)
    device = torch.device(device) if device is not None else batch["input_ids"].device
    chosen = model(**_inputs(batch, slice(0, b), device, trim))
    rejected = model(**_inputs(batch, slice(b, 2 * b), device, trim))
    return chosen, rejected


# ---------------------------------------------------------------- timing
def _check_batches(batches: Sequence[Mapping[str, torch.Tensor]], where: str = "") -> None:
    for i, batch in enumerate(batches):
        try:
            _check_batch(batch)
        except ValueError as err:
            raise ValueError(f"{where}batch {i}: {err}") from None


def _mask_counter(target: Callable[[], dict | None]) -> Callable[..., None]:
    """A forward pre-hook adding the attention mask's real tokens and positions to `target()`
    (skipped when it returns None). Sums stay tensors on the device: no sync per forward."""

    def count(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        counts = target()
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        if counts is not None and isinstance(mask, torch.Tensor):
            counts["real"] = counts["real"] + mask.sum()
            counts["positions"] += mask.numel()

    return count


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training(
    name: str,
    model: torch.nn.Module,
    batches: Sequence[Mapping[str, torch.Tensor]],
    forward: Callable[..., tuple[torch.Tensor, torch.Tensor]] = stacked_forward,
    *,
    lr: float = 1e-5,
    warmup_steps: int = 1,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    n_params_for_mfu: int | None = None,
    progress: Any = None,
) -> ThroughputReport:
    """Train `model` one optimizer step per batch and time the steps after `warmup_steps`.

    The warm-up steps run the first batches and are not counted, so pass
    `warmup_steps + n_timed` batches. Each step: forward (`forward(model, batch, device)`),
    Bradley-Terry loss, backward, AdamW step. Token counts come from the attention masks the
    model actually received (a forward pre-hook), so trimmed halves count as computed. `autocast_dtype=torch.bfloat16` runs the forward
    under CUDA autocast. `n_params_for_mfu` (CUDA with a known device) fills `mfu`.
    """
    from rmcourse.losses import pairwise_loss
    from rmcourse.trainer import adamw

    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
    batches = list(batches)
    if len(batches) <= warmup_steps:
        raise ValueError(f"need more than warmup_steps={warmup_steps} batches, got {len(batches)}")
    _check_batches(batches)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if autocast_dtype is not None and device.type != "cuda":
        raise ValueError("autocast_dtype needs a CUDA device (bf16 autocast is not taught on CPU)")
    model.train()
    # The trainer's optimizer (fused AdamW), so the ladder times what the course trains with.
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], lr=lr)

    def step(batch: Mapping[str, torch.Tensor]) -> None:
        if autocast_dtype is not None:
            with torch.autocast("cuda", dtype=autocast_dtype):
                chosen, rejected = forward(model, batch, device)
        else:
            chosen, rejected = forward(model, batch, device)
        loss = pairwise_loss(chosen.float(), rejected.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:warmup_steps]:
        step(batch)
    _sync(device)
    reset_peak_memory(device)
    # Count what the model was actually given (two trimmed halves compute fewer positions than
    # the collated batch holds); tensors are summed on the device to avoid a sync per forward.
    seen: dict[str, Any] = {"real": 0, "positions": 0}
    handle = model.register_forward_pre_hook(_mask_counter(lambda: seen), with_kwargs=True)
    pairs = batch_real = batch_positions = 0
    timed = batches[warmup_steps:]
    step_seconds: list[float] = []
    try:
        for batch in timed:
            start = time.perf_counter()
            step(batch)
            _sync(device)  # so each step's time is its own (a no-op on CPU)
            step_seconds.append(time.perf_counter() - start)
            pairs += batch["input_ids"].shape[0] // 2
            r, p = real_and_padded_tokens(batch["attention_mask"])
            batch_real += r
            batch_positions += p
            if progress is not None:
                progress.update(1)
        seconds = sum(step_seconds)
    finally:
        handle.remove()
    real, padded = batch_real, batch_positions
    if seen["positions"]:
        real, padded = int(seen["real"]), int(seen["positions"])
    peak, kind = peak_memory(device)
    mfu = None
    if n_params_for_mfu is not None and device.type == "cuda":
        peak_flops = peak_bf16_flops(torch.cuda.get_device_name(device))
        if peak_flops is not None:
            mfu = model_flops_utilization(n_params_for_mfu, real / seconds, peak_flops)
    del optimizer
    return ThroughputReport(name=name, n_steps=len(timed), n_pairs=pairs, real_tokens=real,
                            padded_tokens=padded, seconds=seconds, peak_memory_bytes=peak,
                            memory_kind=kind, mfu=mfu, step_seconds=tuple(step_seconds))


def fastest_steps(reports: Sequence[ThroughputReport]) -> ThroughputReport:
    """One report from several rounds of the same configuration: each step at its fastest.

    Other programs on the machine only ever slow a step down, so the minimum over rounds of each
    step's time is the best estimate of what the step costs; a burst of load during one round
    then no longer decides a comparison. The rounds must have run the same batches (same steps,
    pairs and tokens); the peak memory is the highest seen.
    """
    reports = list(reports)
    if not reports or not all(isinstance(r, ThroughputReport) for r in reports):
        raise TypeError("reports must be a non-empty sequence of ThroughputReport")
    first = reports[0]
    same = ("name", "n_steps", "n_pairs", "real_tokens", "padded_tokens")
    for r in reports[1:]:
        for field in same:
            if getattr(r, field) != getattr(first, field):
                raise ValueError(f"rounds differ in {field}: {getattr(first, field)!r} vs "
                                 f"{getattr(r, field)!r}; only rounds of the same batches combine")
    if any(len(r.step_seconds) != r.n_steps for r in reports):
        raise ValueError("a report has no per-step times (step_seconds); measure it with "
                         "measure_training")
    steps = tuple(min(times) for times in zip(*(r.step_seconds for r in reports)))
    seconds = sum(steps)
    peaks = [r.peak_memory_bytes for r in reports if r.peak_memory_bytes is not None]
    mfu = None if first.mfu is None else first.mfu * first.seconds / seconds
    return ThroughputReport(name=first.name, n_steps=first.n_steps, n_pairs=first.n_pairs,
                            real_tokens=first.real_tokens, padded_tokens=first.padded_tokens,
                            seconds=seconds, peak_memory_bytes=max(peaks) if peaks else None,
                            memory_kind=first.memory_kind, mfu=mfu, step_seconds=steps)


def cpu_threads() -> int:
    """Threads torch uses for intra-op work on CPU (what the timings depend on)."""
    return torch.get_num_threads()


def environment_summary(device: torch.device | str) -> str:
    """One line naming what the numbers were measured on (device, threads, torch version)."""
    device = torch.device(device)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads"
    return f"{where}; torch {torch.__version__}"


def measure_interleaved(
    model: torch.nn.Module,
    rungs: Mapping[str, tuple[Sequence[Mapping[str, torch.Tensor]], Callable[..., Any]]],
    *,
    rounds: int = 2,
    lr: float = 1e-5,
    device: torch.device | str | None = None,
    n_params_for_mfu: int | None = None,
    progress: Any = None,
) -> dict[str, ThroughputReport]:
    """Time several configurations in turn, step by step, so machine load hits them alike.

    `rungs` maps a name to (batches, forward): batch 0 is an untimed warm-up, the rest are timed,
    one AdamW step each (as in `measure_training`). Each round runs step 1 of every rung, then
    step 2 of every rung, and so on; each rung's report counts every step at its fastest round
    (`fastest_steps`). Comparing rungs measured minutes apart lets a burst of load on a shared
    machine decide the comparison; interleaving makes both sides pay for it. Timing does not
    depend on the weights' values, so the rungs share `model` (each has its own optimizer);
    its weights are restored at the end. Peak memory is measured after the timing, on one more
    step of each rung's first timed batch.
    """
    from rmcourse.losses import pairwise_loss
    from rmcourse.trainer import adamw

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(rungs, Mapping) or not rungs:
        raise ValueError("rungs must be a non-empty mapping name -> (batches, forward)")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    plans: dict[str, tuple[list, Callable]] = {}
    for name, spec in rungs.items():
        if not isinstance(spec, tuple) or len(spec) != 2 or not callable(spec[1]):
            raise TypeError(f"rung {name!r}: expected (batches, forward), got {type(spec).__name__}")
        batches = list(spec[0])
        if len(batches) < 2:
            raise ValueError(f"rung {name!r}: needs a warm-up batch and at least one timed batch")
        _check_batches(batches, where=f"rung {name!r}, ")
        plans[name] = (batches, spec[1])
    device = torch.device(device) if device is not None else next(model.parameters()).device
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizers = {name: adamw(params, lr) for name in plans}

    def step(name: str, batch: Mapping[str, torch.Tensor]) -> None:
        chosen, rejected = plans[name][1](model, batch, device)
        pairwise_loss(chosen.float(), rejected.float()).backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    for name, (batches, _) in plans.items():
        step(name, batches[0])
    _sync(device)
    # Positions the model actually received (a trimmed half computes fewer than its batch holds).
    counting: dict[str, Any] = {"rung": None}
    seen: dict[str, dict[str, Any]] = {name: {"real": 0, "positions": 0} for name in plans}

    times = {name: [[] for _ in range(rounds)] for name in plans}
    peaks: dict[str, int | None] = {name: None for name in plans}
    kind = "unknown"
    handle = model.register_forward_pre_hook(_mask_counter(lambda: seen.get(counting["rung"])),
                                             with_kwargs=True)
    try:
        longest = max(len(batches) - 1 for batches, _ in plans.values())
        for r in range(rounds):
            for i in range(1, longest + 1):
                for name, (batches, _) in plans.items():
                    if i >= len(batches):
                        continue
                    counting["rung"] = name if r == 0 else None
                    start = time.perf_counter()
                    step(name, batches[i])
                    _sync(device)
                    times[name][r].append(time.perf_counter() - start)
                    if progress is not None:
                        progress.update(1)
        counting["rung"] = None
        # Peak memory, untimed: resetting it before every step costs ~0.1 s on CPU (it hands
        # freed memory back to the OS, which the next step then faults in again).
        for name, (batches, _) in plans.items():
            reset_peak_memory(device)
            step(name, batches[1])
            _sync(device)
            peaks[name], kind = peak_memory(device)
    finally:
        handle.remove()
        counting["rung"] = None
        model.load_state_dict(initial)
        del optimizers
    reports: dict[str, ThroughputReport] = {}
    for name, (batches, _) in plans.items():
        timed = batches[1:]
        pairs = sum(b["input_ids"].shape[0] // 2 for b in timed)
        real, positions = int(seen[name]["real"]), int(seen[name]["positions"])
        rounds_of = [ThroughputReport(name=name, n_steps=len(timed), n_pairs=pairs,
                                      real_tokens=real, padded_tokens=positions,
                                      seconds=sum(t), peak_memory_bytes=peaks[name],
                                      memory_kind=kind, step_seconds=tuple(t))
                     for t in times[name]]
        best = fastest_steps(rounds_of)
        mfu = None
        if n_params_for_mfu is not None and device.type == "cuda":
            peak_flops = peak_bf16_flops(torch.cuda.get_device_name(device))
            if peak_flops is not None:
                mfu = model_flops_utilization(n_params_for_mfu, best.tokens_per_second, peak_flops)
        reports[name] = dataclasses.replace(best, mfu=mfu)
    return reports

