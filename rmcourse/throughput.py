"""Measure training speed honestly: pairs/s, real tokens/s, padding waste, peak memory, MFU.

The chapter 04 ladder changes one thing at a time and measures every configuration with ONE
harness, `measure_interleaved`: warm-up steps first (allocators, oneDNN/cuBLAS kernel choice and
torch.compile happen there and would otherwise be billed to the first config), then the rungs take
turns step by step, with CUDA synchronised before the clock stops, and one AdamW optimizer shared
by all rungs, so every rung's peak memory holds the same optimizer state a real run holds.

- Tokens/s counts REAL tokens (attention_mask == 1). Padded positions cost compute but teach the
  model nothing, so a config that pads more looks worse here, as it should.
- Peak memory: on CUDA `torch.cuda.max_memory_allocated` (tensors only; reset before each config).
  On Linux CPUs the process's peak resident set size (VmHWM in /proc/self/status, reset through
  /proc/self/clear_refs): it includes the Python process, the model and the optimizer state, not
  only activations, so compare configs by their difference. Elsewhere it is reported as unknown.
- Model FLOPs utilisation (MFU, Chowdhery et al. 2022, PaLM, arXiv 2204.02311, appendix B): the
  FLOPs a training step needs, about 6 x parameters x tokens (2 for the forward, 4 for the
  backward; Kaplan et al. 2020, arXiv 2001.08361), per second, over the device's peak FLOP/s.
  Only matrix-multiplying parameters count, so embeddings (a lookup) are left out, and
  attention's own FLOPs are ignored (a few percent at these lengths). Gradient checkpointing
  recomputes the forward: the hardware then does about 8 x parameters x tokens (the hardware
  FLOPs utilisation, HFU), while MFU keeps counting 6, the work the model needs.
- Peaks: GPUs from NVIDIA's datasheets (dense bf16, `PEAK_BF16_TFLOPS`); CPUs from cores x clock x
  FLOPs per cycle per core (`cpu_peak`), for the few microarchitectures whose per-cycle numbers
  the course can cite.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, ContextManager, Iterator, Mapping, Sequence

import torch

__all__ = [
    "PEAK_BF16_TFLOPS",
    "ThroughputReport",
    "Rung",
    "CpuPeak",
    "count_parameters",
    "real_and_padded_tokens",
    "reset_peak_memory",
    "longest_batch",
    "peak_memory",
    "peak_bf16_flops",
    "cpu_peak",
    "training_flops",
    "model_flops_utilization",
    "tf32_matmuls",
    "pad_to_multiple",
    "ActivationCheckpointing",
    "activation_memory",
    "CompiledRewardModel",
    "compile_counters",
    "stacked_forward",
    "separate_forward",
    "measure_training",
    "fastest_steps",
    "measure_interleaved",
    "environment_summary",
]

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from NVIDIA's datasheets. A key matches
# torch.cuda.get_device_name() as a whole word ("L4" does not match "NVIDIA L40"); the first
# match wins, so specific names come first.
PEAK_BF16_TFLOPS: dict[str, float] = {
    "GH200": 989.0,       # GH200 datasheet (its GPU is an H100 SXM)
    "H200": 989.0,        # H200 SXM datasheet (same compute as H100 SXM)
    "H100 PCIe": 756.0,   # H100 PCIe datasheet
    "H100 NVL": 835.0,    # H100 NVL datasheet
    "H100": 989.0,        # H100 SXM ("NVIDIA H100 80GB HBM3") datasheet
    "A100": 312.0,        # A100 datasheet (SXM and PCIe)
    "L40S": 362.0,        # L40S datasheet
    "L40": 181.0,         # L40 datasheet
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
        # a whole-word match: "L4" must not match "NVIDIA L40", "H200" not "NVIDIA GH200"
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])", device_name,
                     flags=re.IGNORECASE):
            return tflops * 1e12
    return None


@dataclass(frozen=True)
class CpuPeak:
    """A CPU's peak FLOP/s: cores x clock x FLOPs per cycle per core, with where each came from."""

    microarchitecture: str
    cores: int
    clock_hz: float
    clock_source: str
    fp32_flops_per_cycle: int
    bf16_flops_per_cycle: int | None
    source: str

    def flops(self, dtype: torch.dtype = torch.float32) -> float | None:
        """Peak FLOP/s for matmuls in `dtype` (float32 or bfloat16); None when not known."""
        if dtype == torch.float32:
            per_cycle: int | None = self.fp32_flops_per_cycle
        elif dtype == torch.bfloat16:
            per_cycle = self.bf16_flops_per_cycle
        else:
            raise ValueError(f"dtype must be torch.float32 or torch.bfloat16, got {dtype}")
        return None if per_cycle is None else self.cores * self.clock_hz * per_cycle


# FLOPs per cycle per core. An FMA counts as 2 FLOPs; a W-bit pipe holds W/32 float32 lanes.
# - AMD Zen 3 / Zen 4 (family 19h): two FMA pipes (FP0, FP1), each 256 bits wide; Zen 4 runs a
#   512-bit AVX-512 op through a pipe's 256-bit datapath, so AVX-512 does not raise the peak:
#   2 pipes x 8 lanes x 2 = 32 fp32 FLOPs/cycle (AMD, "Software Optimization Guide for the AMD
#   Family 19h Zen4 Microarchitecture", pub. 57647, section 2.11.1, as encoded in LLVM's
#   X86ScheduleZnver4.td). Zen 4's AVX512-BF16 instruction VDPBF16PS does two bf16 products
#   and their sum per fp32 lane (Intel SDM, VDPBF16PS), twice an FMA's work in the same lane, so
#   we take 2 x 32 = 64 bf16 FLOPs/cycle as its ceiling.
# - Intel Xeon with AMX (Sapphire Rapids and later): 1,024 bf16 FLOPs/cycle on the AMX unit and
#   64 fp32 FLOPs/cycle on AVX-512 (Intel, "Accelerate AI Workloads with Intel AMX", p. 4, quoted
#   in PyTorch's AMX recipe, pytorch.org/tutorials/recipes/amx.html).
# Other CPUs differ by model in ways /proc/cpuinfo does not show (one or two AVX-512 FMA units on
# Skylake-SP, 256- or 512-bit datapaths on Zen 5), so `cpu_peak` returns None for them.
def _cpu_table(vendor: str, family: int | None, flags: set[str]) -> tuple[str, int, int | None, str] | None:
    if vendor == "AuthenticAMD" and family == 25:
        bf16 = 64 if "avx512_bf16" in flags else None
        name = "AMD Zen 4" if "avx512f" in flags else "AMD Zen 3"
        return (name, 32, bf16, "AMD Software Optimization Guide for Family 19h (pub. 57647), "
                "2 FMA pipes x 256 bits; bf16: VDPBF16PS does 2 products per fp32 lane")
    if vendor == "GenuineIntel" and "amx_bf16" in flags:
        return ("Intel Xeon with AMX", 64, 1024,
                "Intel, Accelerate AI Workloads with Intel AMX (p. 4): 1,024 bf16 and 64 fp32 "
                "FLOPs per cycle per core")
    return None


def _cpuinfo_fields(cpuinfo: str) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as a dict (x86 field names)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_peak(cpuinfo: str | None = None, threads: int | None = None,
             max_clock_khz: int | None = None) -> CpuPeak | None:
    """This CPU's peak FLOP/s for the `threads` cores torch uses, or None when it is not known.

    cores: `threads` (default `torch.get_num_threads()`), divided by the hyper-threads per core
    ("siblings" / "cpu cores") because two hyper-threads share one core's FMA units.
    clock: the highest clock the kernel reports (cpufreq's cpuinfo_max_freq), else /proc/cpuinfo's
    "cpu MHz" (in a virtual machine, the nominal rate: a boost clock above it would make the true
    peak higher and the MFU computed against this one an overestimate). FLOPs per cycle come
    from the small table above. `cpuinfo` / `max_clock_khz` let a test pass a machine's values.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            return None
    if not isinstance(cpuinfo, str):
        raise TypeError(f"cpuinfo must be a str, got {type(cpuinfo).__name__}")
    threads = torch.get_num_threads() if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    fields = _cpuinfo_fields(cpuinfo)
    try:
        family: int | None = int(fields.get("cpu family", ""))
    except ValueError:
        family = None
    entry = _cpu_table(fields.get("vendor_id", ""), family, set(fields.get("flags", "").split()))
    if entry is None:
        return None
    name, fp32, bf16, source = entry
    if max_clock_khz is None:
        try:
            with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as fh:
                max_clock_khz = int(fh.read().strip())
        except (OSError, ValueError):
            max_clock_khz = None
    if max_clock_khz:
        clock_hz, clock_source = max_clock_khz * 1e3, "cpufreq cpuinfo_max_freq"
    else:
        try:
            clock_hz, clock_source = float(fields["cpu MHz"]) * 1e6, "/proc/cpuinfo cpu MHz"
        except (KeyError, ValueError):
            return None
    try:
        smt = max(1, int(fields["siblings"]) // int(fields["cpu cores"]))
    except (KeyError, ValueError, ZeroDivisionError):
        smt = 1
    cores = max(1, math.ceil(threads / smt))
    return CpuPeak(microarchitecture=name, cores=cores, clock_hz=clock_hz, clock_source=clock_source,
                   fp32_flops_per_cycle=fp32, bf16_flops_per_cycle=bf16, source=source)


def training_flops(n_params: int, tokens: float, recompute_forward: bool = False) -> float:
    """FLOPs of training on `tokens` tokens: 6 N per token (2 forward + 4 backward), or 8 N
    when gradient checkpointing recomputes the forward during the backward (hardware FLOPs)."""
    if isinstance(n_params, bool) or not isinstance(n_params, int) or n_params < 1:
        raise ValueError(f"n_params must be a positive int, got {n_params!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, (int, float)) or not math.isfinite(tokens) \
            or tokens < 0:
        raise ValueError(f"tokens must be a finite number >= 0, got {tokens!r}")
    return (8.0 if recompute_forward else 6.0) * n_params * tokens


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


# ---------------------------------------------------------------- precision and shapes
@contextlib.contextmanager
def tf32_matmuls() -> Iterator[None]:
    """TF32 for float32 matmuls and convolutions on CUDA inside the block; the old setting after.

    Uses the per-backend API of torch >= 2.9 (`torch.backends.cuda.matmul.fp32_precision`,
    `torch.backends.cudnn.conv.fp32_precision`), never the deprecated `allow_tf32` flags: torch
    refuses to mix the two (a RuntimeError inside torch.compile, which reads the precision).
    Restoring matters: TF32 rounds inputs to 10 mantissa bits, so a tolerance check run later
    in float32 would otherwise fail for a reason unrelated to what it checks.
    """
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    old = (matmul.fp32_precision, conv.fp32_precision)
    matmul.fp32_precision = "tf32"
    conv.fp32_precision = "tf32"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = old


def pad_to_multiple(batch: Mapping[str, torch.Tensor], multiple: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """A right-padded batch widened to the next multiple of `multiple` columns.

    torch.compile specialises on shapes: every new width is a recompile (and past
    `torch._dynamo.config.recompile_limit` it falls back to eager code). Rounding widths up to a
    multiple of 8 or 64 leaves a handful of shapes, and tensor cores like multiples of 8.
    New columns hold `pad_token_id` with attention_mask 0 (token_type_ids 0); other keys pass.
    """
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive int, got {multiple!r}")
    if isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int):
        raise TypeError(f"pad_token_id must be an int, got {pad_token_id!r}")
    _check_batch(batch)
    width = batch["input_ids"].shape[1]
    extra = -width % multiple
    out = dict(batch)
    if extra == 0:
        return out
    fill = {"input_ids": pad_token_id, "attention_mask": 0, "token_type_ids": 0}
    for key, value in fill.items():
        if key in batch:
            out[key] = torch.nn.functional.pad(batch[key], (0, extra), value=value)
    return out


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


class ActivationCheckpointing:
    """A switch for activation (gradient) checkpointing on a transformers model, for a rung.

    Checkpointing (Chen et al. 2016) keeps only each layer's input during the forward pass and
    recomputes the layer during the backward: less activation memory, one more forward's worth
    of compute. transformers' `activation_checkpointing_enable()` installs the checkpoint
    function on every layer and, for models fed `input_ids`, a forward hook that makes the
    embeddings' output require grad; `..._disable()` clears the layers' flags but leaves that hook
    in place, so switching on and off per step would stack hooks (and make a compiled model
    recompile at every switch). This switch enables once, then each `with switch():` only flips
    the layers' flags; `close()` removes the hook.
    """

    def __init__(self, hf_model: torch.nn.Module) -> None:
        enable = getattr(hf_model, "activation_checkpointing_enable", None) or \
            getattr(hf_model, "gradient_checkpointing_enable", None)
        if enable is None:
            raise TypeError("hf_model must be a transformers PreTrainedModel that supports "
                            "activation checkpointing")
        enable()
        self.model = hf_model
        self.layers = [(m, bool(m.gradient_checkpointing)) for m in hf_model.modules()
                       if hasattr(m, "gradient_checkpointing")]
        if not any(on for _, on in self.layers):
            raise ValueError(f"{type(hf_model).__name__} has no layer that checkpoints")
        self._set(False)

    def _set(self, on: bool) -> None:
        for module, enabled in self.layers:
            module.gradient_checkpointing = on and enabled

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self._set(True)
        try:
            yield
        finally:
            self._set(False)

    def close(self) -> None:
        """Leave the model as it was before: flags off, the input hook removed."""
        self._set(False)
        remove = getattr(self.model, "disable_input_require_grads", None)
        if remove is not None and hasattr(self.model, "_require_grads_hook"):
            remove()


def activation_memory(model: torch.nn.Module, batch: Mapping[str, torch.Tensor],
                      forward: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None) -> int:
    """Bytes of the activations one training forward keeps for the backward pass.

    Autograd saves tensors during the forward (a Linear keeps its input, a softmax its output,
    ...); `torch.autograd.graph.saved_tensors_hooks` sees every one. Parameters are saved too
    (a Linear keeps its weight) but they are not activations: they exist anyway. A tensor
    saved twice, or two views of one storage, occupy the memory once, so storages are counted
    once. The model's mode (train/eval) is left as it is.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_batch(batch)
    forward = stacked_forward if forward is None else forward
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in params and tensor.device.type != "meta":
            storages[key] = max(storages.get(key, 0), storage.nbytes())
        return tensor

    device = next(model.parameters()).device
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        chosen, rejected = forward(model, batch, device)
    del chosen, rejected
    return sum(storages.values())


class CompiledRewardModel(torch.nn.Module):
    """A RewardModel's transformers backbone under `torch.compile`, for a compile rung.

    `fullgraph=True`: a graph break raises instead of silently running part of the model in
    eager mode, and so does reaching `torch._dynamo.config.recompile_limit` (where the default
    mode quietly falls back to eager code, and a "compiled" rung would time eager code).
    `dynamic=False`: one graph per input shape, so pad batches to a few widths
    (`pad_to_multiple`). The wrapper skips RewardModel's input checks (a data-dependent branch,
    a graph break); its parameters are the RewardModel's own.
    """

    def __init__(self, reward_model: torch.nn.Module, backend: str = "inductor") -> None:
        super().__init__()
        hf = getattr(reward_model, "hf", None)
        if not isinstance(hf, torch.nn.Module):
            raise TypeError("reward_model must be an rmcourse RewardModel (with a .hf backbone)")
        pooling = getattr(reward_model, "pooling", None)
        if pooling == "mean":
            # the compiled module is the transformers model, whose own head reads one token: a
            # mean-pooled RewardModel would be timed (and scored) as a different model
            raise ValueError("CompiledRewardModel compiles the transformers model with its own head "
                             "(one token's features); this RewardModel uses pooling='mean', which "
                             "that head does not compute")
        self.compiled = torch.compile(hf, backend=backend, fullgraph=True, dynamic=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.compiled(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        return out.logits.squeeze(-1).float()


def compile_counters() -> dict[str, int]:
    """Snapshot of torch.compile's global counters: graphs compiled so far and graph breaks.

    Compare two snapshots: after a warm-up over every shape, a timed phase that adds graphs has
    recompiled (slow steps billed to the rung), and graph breaks mean parts ran eagerly.
    """
    from torch._dynamo.utils import counters

    return {"graphs": int(counters["stats"].get("unique_graphs", 0)),
            "graph_breaks": int(sum(counters["graph_break"].values()))}


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


def _check_autocast(dtype: torch.dtype | None, device: torch.device) -> None:
    if dtype is None:
        return
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"autocast_dtype must be torch.bfloat16 or torch.float16, got {dtype}")
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"autocast_dtype needs a CUDA or CPU device, got {device.type}")


def _autocast(dtype: torch.dtype | None, device: torch.device) -> ContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


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
    model actually received (a forward pre-hook), so trimmed halves count as computed.
    `autocast_dtype=torch.bfloat16` runs the forward under autocast on the device (CUDA, or a CPU
    with bf16 units: `rmcourse.device.bf16_supported`). `n_params_for_mfu` (CUDA with a known
    device) fills `mfu`. To compare configurations, prefer `measure_interleaved`.
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
    _check_autocast(autocast_dtype, device)
    model.train()
    # The trainer's optimizer (fused AdamW), so the ladder times what the course trains with.
    optimizer = adamw([p for p in model.parameters() if p.requires_grad], lr=lr)

    def step(batch: Mapping[str, torch.Tensor]) -> None:
        with _autocast(autocast_dtype, device):
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
        cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
        return f"{where}; torch {torch.__version__}{cuda}"
    where = f"CPU, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads"
    return f"{where}; torch {torch.__version__}"


@dataclass(frozen=True)
class Rung:
    """One configuration of the ladder, for `measure_interleaved`.

    `batches[:warmup]` are untimed warm-up steps (a compiled rung warms up on one batch of every
    shape it will see), the rest are timed, one AdamW step each. `forward(model, batch, device)`
    returns (chosen, rejected) rewards; `model` replaces the shared model for this rung (e.g. a
    wrapper that calls a compiled module sharing its parameters). Each step runs under
    `autocast_dtype` autocast when set, and inside `context()` when given: a fresh context
    manager per step that switches the rung's setting on and restores it after (TF32,
    gradient checkpointing), so rungs that take turns never leak settings into each other.
    """

    batches: Sequence[Mapping[str, torch.Tensor]]
    forward: Callable[..., tuple[torch.Tensor, torch.Tensor]] = stacked_forward
    warmup: int = 1
    autocast_dtype: torch.dtype | None = None
    context: Callable[[], ContextManager] | None = None
    model: torch.nn.Module | None = None


def _as_rung(name: str, spec: Any) -> Rung:
    if isinstance(spec, tuple):  # (batches, forward), the short form
        if len(spec) != 2 or not callable(spec[1]):
            raise TypeError(f"rung {name!r}: expected (batches, forward), got a tuple of {len(spec)}")
        spec = Rung(batches=spec[0], forward=spec[1])
    if not isinstance(spec, Rung):
        raise TypeError(f"rung {name!r}: expected a Rung or (batches, forward), got {type(spec).__name__}")
    batches = list(spec.batches)
    if isinstance(spec.warmup, bool) or not isinstance(spec.warmup, int) or spec.warmup < 1:
        raise ValueError(f"rung {name!r}: warmup must be an int >= 1, got {spec.warmup!r}")
    if len(batches) <= spec.warmup:
        raise ValueError(f"rung {name!r}: needs {spec.warmup} warm-up batch(es) and at least one "
                         f"timed batch, got {len(batches)}")
    if not callable(spec.forward):
        raise TypeError(f"rung {name!r}: forward must be callable")
    if spec.context is not None and not callable(spec.context):
        raise TypeError(f"rung {name!r}: context must be a callable returning a context manager")
    _check_batches(batches, where=f"rung {name!r}, ")
    return dataclasses.replace(spec, batches=batches)


def longest_batch(batches: Sequence[Mapping[str, torch.Tensor]]) -> Mapping[str, torch.Tensor]:
    """The batch with the most positions (rows x width of `input_ids`): the one whose step needs
    the most activation memory; the first of equals."""
    batches = list(batches)
    if not batches:
        raise ValueError("no batches")
    return max(batches, key=lambda b: b["input_ids"].numel())


def measure_interleaved(
    model: torch.nn.Module,
    rungs: Mapping[str, Rung | tuple[Sequence[Mapping[str, torch.Tensor]], Callable[..., Any]]],
    *,
    rounds: int = 2,
    lr: float = 1e-5,
    device: torch.device | str | None = None,
    n_params_for_mfu: int | None = None,
    peak_flops: Mapping[str, float | None] | float | None = None,
    progress: Any = None,
) -> dict[str, ThroughputReport]:
    """Time several configurations in turn, step by step, so machine load hits them alike.

    `rungs` maps a name to a `Rung` (or the short form (batches, forward): one warm-up batch,
    no autocast). Every rung runs its warm-up steps first; then each round runs timed step 1 of
    every rung, then step 2 of every rung, and so on; each rung's report counts every step at its
    fastest round (`fastest_steps`). Comparing rungs measured minutes apart lets a burst of load
    on a shared machine decide the comparison; interleaving makes all of them pay for it.

    Timing does not depend on the weights' values, so the rungs share `model` and ONE AdamW
    optimizer (the trainer's fused AdamW): every rung's peak memory then holds exactly one
    optimizer state, as a real training run does, and rungs compare by their activations.
    The weights are restored at the end. Peak memory is measured on each rung's longest timed
    batch (`longest_batch`: the most positions), during its step of the last round (one more,
    untimed step when `rounds == 1`). MFU is 6 x `n_params_for_mfu` x real tokens/s over
    `peak_flops` (one number, or a mapping rung name -> peak, e.g. a bf16 peak for a bf16 rung);
    when `peak_flops` is None, CUDA devices use the dense bf16 datasheet peak.
    """
    from rmcourse.losses import pairwise_loss
    from rmcourse.trainer import adamw

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(rungs, Mapping) or not rungs:
        raise ValueError("rungs must be a non-empty mapping name -> Rung")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an int >= 1, got {rounds!r}")
    plans = {name: _as_rung(name, spec) for name, spec in rungs.items()}
    device = torch.device(device) if device is not None else next(model.parameters()).device
    for name, plan in plans.items():
        try:
            _check_autocast(plan.autocast_dtype, device)
        except ValueError as err:
            raise ValueError(f"rung {name!r}: {err}") from None
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = adamw(params, lr)

    def step(name: str, batch: Mapping[str, torch.Tensor]) -> None:
        plan = plans[name]
        target = plan.model if plan.model is not None else model
        with plan.context() if plan.context is not None else contextlib.nullcontext():
            with _autocast(plan.autocast_dtype, device):
                chosen, rejected = plan.forward(target, batch, device)
            pairwise_loss(chosen.float(), rejected.float()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for name, plan in plans.items():
        for batch in plan.batches[:plan.warmup]:
            step(name, batch)
    _sync(device)
    # Positions the model actually received (a trimmed half computes fewer than its batch holds).
    counting: dict[str, Any] = {"rung": None}
    seen: dict[str, dict[str, Any]] = {name: {"real": 0, "positions": 0} for name in plans}

    times = {name: [[] for _ in range(rounds)] for name in plans}
    peaks: dict[str, int | None] = {name: None for name in plans}
    kind = "unknown"
    hooked = {id(model): model}
    for plan in plans.values():
        if plan.model is not None:
            hooked[id(plan.model)] = plan.model
    handles = [m.register_forward_pre_hook(_mask_counter(lambda: seen.get(counting["rung"])),
                                           with_kwargs=True) for m in hooked.values()]
    try:
        longest = max(len(plan.batches) - plan.warmup for plan in plans.values())
        # Peak memory is taken on each rung's longest timed batch (most positions): the step that
        # decides whether an epoch fits in memory, so rungs that batch the same pairs differently
        # compare on their worst step. Resetting the peak costs ~0.1 s on CPU (it hands freed
        # memory back to the OS, which the step then faults in again), so it happens once per
        # rung: in the last round, whose slower time for that step the fastest-round rule then
        # passes over; with one round, on one more untimed step after the timing.
        peak_step = {name: max(range(len(plan.batches) - plan.warmup),
                               key=lambda k, b=plan.batches[plan.warmup:]: (b[k]["input_ids"].numel(), -k))
                     for name, plan in plans.items()}
        for r in range(rounds):
            for i in range(longest):
                for name, plan in plans.items():
                    timed = plan.batches[plan.warmup:]
                    if i >= len(timed):
                        continue
                    counting["rung"] = name if r == 0 else None
                    take_peak = rounds > 1 and r == rounds - 1 and i == peak_step[name]
                    if take_peak:
                        reset_peak_memory(device)
                    start = time.perf_counter()
                    step(name, timed[i])
                    _sync(device)
                    times[name][r].append(time.perf_counter() - start)
                    if take_peak:
                        peaks[name], kind = peak_memory(device)
                    if progress is not None:
                        progress.update(1)
        counting["rung"] = None
        if rounds == 1:
            for name, plan in plans.items():
                reset_peak_memory(device)
                step(name, plan.batches[plan.warmup + peak_step[name]])
                _sync(device)
                peaks[name], kind = peak_memory(device)
    finally:
        for handle in handles:
            handle.remove()
        counting["rung"] = None
        model.load_state_dict(initial)
    reports: dict[str, ThroughputReport] = {}
    for name, plan in plans.items():
        timed = plan.batches[plan.warmup:]
        pairs = sum(b["input_ids"].shape[0] // 2 for b in timed)
        real, positions = int(seen[name]["real"]), int(seen[name]["positions"])
        rounds_of = [ThroughputReport(name=name, n_steps=len(timed), n_pairs=pairs,
                                      real_tokens=real, padded_tokens=positions,
                                      seconds=sum(t), peak_memory_bytes=peaks[name],
                                      memory_kind=kind, step_seconds=tuple(t))
                     for t in times[name]]
        best = fastest_steps(rounds_of)
        if isinstance(peak_flops, Mapping):
            peak = peak_flops.get(name)
        elif peak_flops is None and device.type == "cuda":
            peak = peak_bf16_flops(torch.cuda.get_device_name(device))
        else:
            peak = peak_flops
        mfu = None
        if n_params_for_mfu is not None and peak is not None:
            mfu = model_flops_utilization(n_params_for_mfu, best.tokens_per_second, float(peak))
        reports[name] = dataclasses.replace(best, mfu=mfu)
    return reports
