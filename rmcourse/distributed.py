"""Data-parallel training helpers: one process per device, same weights, different batches.

`torchrun --nproc_per_node=K -m rmcourse.train ...` starts K copies of the trainer and tells each
its place through environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
Each copy:
1. joins a process group (`gloo` on CPU, `nccl` on CUDA) — `init_distributed`;
2. wraps its model in `torch.nn.parallel.DistributedDataParallel` (DDP). Wrapping broadcasts
   rank 0's parameters and buffers to every rank (so all start identical, whatever each loaded),
   and by default buffers again at the start of every forward (`forward_sync_buffers`, formerly
   `broadcast_buffers`). From then on only gradients travel: DDP averages them across ranks
   during `backward()` (an all-reduce in buckets, overlapped with the backward pass), so every
   rank applies the same update and the parameters stay identical;
3. trains on its own share of each step's batches — `shard_batches`;
4. lets only rank 0 print, show a progress bar and write the checkpoint — `DistInfo.is_main`.

`parameter_checksum` fingerprints the weights so a test can prove the ranks ended identical
(which says nothing about WHICH batches they trained on: chapter 04 also compares the run with a
single process that sees the same global batches through gradient accumulation).
Reference: PyTorch's DDP design note (pytorch.org/docs/stable/notes/ddp.html) and Li et al. 2020,
"PyTorch Distributed: Experiences on Accelerating Data Parallel Training" (arXiv 2006.15704).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence, TypeVar

import torch

T = TypeVar("T")

__all__ = ["DistInfo", "dist_info_from_env", "init_distributed", "cleanup_distributed",
           "shard_batches", "parameter_checksum", "gather_objects", "default_backend"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a data-parallel run. A single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        for name in ("rank", "world_size", "local_rank"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if self.world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")
        if self.local_rank < 0:
            raise ValueError(f"local_rank must be >= 0, got {self.local_rank}")

    @property
    def is_distributed(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress and saves."""
        return self.rank == 0


def _env_int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def dist_info_from_env(env: dict | None = None) -> DistInfo:
    """Read RANK / WORLD_SIZE / LOCAL_RANK as torchrun sets them (absent: a single process)."""
    env = os.environ if env is None else env
    world_size = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local_rank = _env_int(env, "LOCAL_RANK", rank)
    if world_size > 1 and "RANK" not in env:
        raise ValueError("WORLD_SIZE > 1 but RANK is not set: start the run with torchrun")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def default_backend(device: torch.device | str) -> str:
    """`nccl` for CUDA tensors (GPU-to-GPU all-reduce), `gloo` for CPU tensors."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_distributed(device: torch.device | str | None = None, backend: str | None = None,
                     timeout_s: float = 300.0) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun prepared; returns (info, the device this rank uses).

    A single process (no WORLD_SIZE, or 1) returns rank 0 of 1 and touches nothing. On CUDA each
    rank takes GPU `LOCAL_RANK`, so a node needs one GPU per process: a rank whose LOCAL_RANK has
    no GPU is refused with a ValueError naming the fix (fewer processes, or
    `RMCOURSE_DEVICE=cpu`). On CPU all ranks share the cores (torchrun sets OMP_NUM_THREADS=1 per
    process so they do not fight over them).
    """
    from rmcourse.device import pick_device

    info = dist_info_from_env()
    device = pick_device() if device is None else torch.device(device)
    if device.type == "cuda":
        visible = torch.cuda.device_count()
        if info.local_rank >= visible:
            raise ValueError(
                f"LOCAL_RANK={info.local_rank} needs GPU {info.local_rank}, but this node has "
                f"{visible} visible CUDA device(s): start at most {visible} process(es) per node "
                "(torchrun --nproc_per_node), or train on CPU with RMCOURSE_DEVICE=cpu")
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not info.is_distributed:
        return info, device
    backend = backend or default_backend(device)
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"unknown backend {backend!r}; expected 'gloo' or 'nccl'")
    if backend == "nccl" and device.type != "cuda":
        raise ValueError("backend 'nccl' needs CUDA tensors; use 'gloo' on CPU")
    if not torch.distributed.is_initialized():
        kwargs = {"device_id": device} if backend == "nccl" else {}
        torch.distributed.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s),
                                             **kwargs)
    return info, device


def cleanup_distributed() -> None:
    """Leave the process group (safe to call when none was joined)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def shard_batches(batches: Sequence[T], info: DistInfo) -> list[T]:
    """This rank's share of an ordered list of batches: every `world_size`-th, from `rank`.

    Every rank gets the SAME number of batches (the tail that cannot be split evenly is dropped):
    DDP all-reduces inside every backward, so a rank with one batch more would wait forever for
    partners that have already finished.
    """
    if not isinstance(info, DistInfo):
        raise TypeError(f"info must be a DistInfo, got {type(info).__name__}")
    batches = list(batches)
    usable = len(batches) - len(batches) % info.world_size
    if usable == 0:
        raise ValueError(f"{len(batches)} batch(es) cannot be shared by {info.world_size} ranks: "
                         "use more data or a smaller batch size")
    return batches[info.rank:usable:info.world_size]


def parameter_checksum(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes), in name order.

    Two models with bit-identical weights give the same hex digest; any differing bit changes it.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    state = model.state_dict()
    if not state:
        raise ValueError("model has no parameters or buffers to checksum")
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous().reshape(-1)
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(state[name].shape)).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's `obj`, in rank order (a one-element list in a single process)."""
    if not info.is_distributed:
        return [obj]
    out: list = [None] * info.world_size
    torch.distributed.all_gather_object(out, obj)
    return out
