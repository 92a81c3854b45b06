"""One place that decides where tensors live and how big a run should be."""
from __future__ import annotations

import contextlib
import functools
import os
import random
from typing import Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_VALID = ("cuda", "mps", "cpu")


def pick_device() -> torch.device:
    """CUDA if present, then Apple MPS, then CPU. `RMCOURSE_DEVICE=cpu` forces a choice."""
    forced = os.environ.get("RMCOURSE_DEVICE")
    if forced:
        if forced not in _VALID:
            raise ValueError(f"RMCOURSE_DEVICE={forced!r} is not one of {_VALID}")
        if forced == "cuda" and not torch.cuda.is_available():
            raise ValueError("RMCOURSE_DEVICE=cuda but torch sees no CUDA device")
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def on_gpu() -> bool:
    """True when the course will train on CUDA (the 'scale up' switch for notebooks)."""
    return pick_device().type == "cuda"


def scaled(cpu: T, gpu: T) -> T:
    """Pick a run size: the small CPU default, or the bigger one when CUDA is present."""
    return gpu if on_gpu() else cpu


_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 AMX / AVX512-BF16, Arm BF16


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """The bf16 matrix-unit flags this CPU reports in /proc/cpuinfo (Linux), e.g. ['amx_bf16'].

    Empty where the CPU has none, or where /proc/cpuinfo does not exist (macOS, Windows): bf16
    on such a CPU is emulated and slower than float32, so the course only uses it where a flag
    is present. `cpuinfo` lets a test pass the file's text.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                cpuinfo = handle.read()
        except OSError:
            return []
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 says "flags", Arm says "Features"
            flags.update(value.split())
    return [flag for flag in _BF16_CPU_FLAGS if flag in flags]


def bf16_supported(device: torch.device | str) -> bool:
    """Whether bf16 autocast is worth using on `device`: a CUDA GPU with bf16, or a CPU with
    bf16 matrix units (`cpu_bf16_flags`). `RMCOURSE_BF16=0` (or `1`) overrides the CPU answer."""
    device = torch.device(device)
    if device.type == "cuda":
        # Native bf16 only (compute capability 8.0+): on older GPUs torch emulates it, slowly.
        return bool(torch.cuda.is_available()
                    and torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu":
        return False
    forced = os.environ.get("RMCOURSE_BF16")
    if forced is not None:
        if forced not in ("0", "1"):
            raise ValueError(f"RMCOURSE_BF16={forced!r} must be '0' or '1'")
        return forced == "1"
    return bool(cpu_bf16_flags())


def autocast(device: torch.device | str,
             enabled: bool | None = None) -> contextlib.AbstractContextManager:
    """A bf16 autocast context for `device`, or a no-op.

    `enabled=None` is what scoring uses (`RewardModel.score`, `rmcourse.metrics.score_pairs`):
    bf16 on a CUDA GPU with bf16, float32 everywhere else. Scoring on a CPU stays float32 even
    where the CPU has bf16 units: then a checkpoint gets the rewards transformers alone computes
    from it, to float precision. (Measured on the course machine, AVX512-BF16, a MiniLM reward
    model on 800 preference-world test pairs: bf16 scoring took 0.7x the CPU time and changed
    the order of 1 pair, and without `float32_readout` it rounded 2 pairs to exact ties.)
    `enabled=True` gives bf16 autocast on CUDA or CPU (what the trainer uses when its
    `bf16` setting resolves to True, see `bf16_supported`); `enabled=False` is a no-op.

    Inside the context matrix multiplications run in bf16 (8 bits of mantissa, float32's range),
    so their outputs are rounded to about 3 significant digits: keep a reward head in float32
    with `float32_readout` so rewards are not rounded onto a grid where chosen and rejected tie.
    """
    device = torch.device(device)
    if enabled is None:
        enabled = device.type == "cuda" and bf16_supported(device)
    if not enabled:
        return contextlib.nullcontext()
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"bf16 autocast is used on cuda and cpu only, not on {device.type}")
    return torch.autocast(device.type, dtype=torch.bfloat16)


_READOUT_FLAG = "_rmcourse_float32_readout"
_READOUT_STACKS = "_rmcourse_readout_stacks"


def _readout_enter(module, args, kwargs):
    stack = contextlib.ExitStack()
    for kind in ("cuda", "cpu"):
        if torch.is_autocast_enabled(kind):
            stack.enter_context(torch.autocast(kind, enabled=False))
    getattr(module, _READOUT_STACKS).append(stack)
    # Inputs take the weights' dtype: float32 for a float32 model (the point), and a model
    # stored in bf16 keeps working (its head then computes in bf16, as it always did).
    weight = next(module.parameters(), None)
    dtype = weight.dtype if weight is not None and weight.is_floating_point() else torch.float32

    def cast(x):
        return x.to(dtype) if torch.is_tensor(x) and x.is_floating_point() else x

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def _readout_leave(module, args, kwargs, output):
    stacks = getattr(module, _READOUT_STACKS)
    if stacks:
        stacks.pop().close()


def float32_readout(module: torch.nn.Module) -> torch.nn.Module:
    """Make `module` (a reward head: one small Linear) compute in float32 inside autocast too.

    Under bf16 autocast a Linear returns bf16, so a reward r is rounded to a step of about
    r / 128 (0.016 near r = 2): two close rewards become equal and a pair scores as a tie. The
    head is a [hidden x 1] product, a negligible share of the work, so running it in float32
    costs nothing. Forward hooks turn autocast off around the module's forward and cast its
    inputs to the weights' dtype (float32); nothing is saved with the weights, and the module still pickles (the hooks
    are module-level functions). Calling it twice does nothing more. Returns `module`.
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if getattr(module, _READOUT_FLAG, False):
        return module
    setattr(module, _READOUT_STACKS, [])
    module.register_forward_pre_hook(_readout_enter, with_kwargs=True)
    # always_call: autocast is switched back on even when the forward raises.
    module.register_forward_hook(_readout_leave, with_kwargs=True, always_call=True)
    setattr(module, _READOUT_FLAG, True)
    return module


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a rerun on the same machine prints the same numbers."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def timer() -> Iterator[dict]:
    """`with timer() as t: ...` then `t["seconds"]`; synchronises CUDA so GPU time is real."""
    import time

    out: dict = {}
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    try:
        yield out
    finally:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out["seconds"] = time.perf_counter() - start


def one_thread(fn):
    """Decorator: run ``fn`` with one intra-op CPU thread (restored afterwards).

    For loops over tiny matrices (chapter 09's policy): extra threads add no speed, and when the
    cores are shared with other work they wait on each other (see `rmcourse.heads`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper
