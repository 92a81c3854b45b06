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
