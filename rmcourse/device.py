"""One place that decides where tensors live and how big a run should be."""
from __future__ import annotations

import contextlib
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
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    forced = os.environ.get("RMCOURSE_BF16")
    if forced is not None:
        if forced not in ("0", "1"):
            raise ValueError(f"RMCOURSE_BF16={forced!r} must be '0' or '1'")
        return forced == "1"
    return bool(cpu_bf16_flags())


def autocast(device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (half the memory traffic, same range as fp32); a no-op elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
