"""torchrun (DistributedDataParallel) helpers for 3C; every one is a no-op without torchrun.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT; the process group uses nccl on
CUDA (one GPU per process, ``cuda:LOCAL_RANK``) and gloo on the CPU.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """True when torchrun started this process (one process in the world included)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_type: str) -> tuple[int, int]:
    """Joins torchrun's process group (if any); returns (rank, world size)."""
    if launched() and not is_dist():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # rank 0 alone clusters and evaluates while the others wait in a collective: long timeout
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                timeout=datetime.timedelta(hours=3))
    return rank(), world_size()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` (any picklable object) on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_in_order(part: torch.Tensor) -> torch.Tensor:
    """Every rank's ``part`` concatenated in rank order (lengths may differ), on part's device."""
    if not is_dist():
        return part
    parts = [None] * world_size()
    dist.all_gather_object(parts, part.cpu())
    return torch.cat(parts).to(part.device)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (same shape on all ranks) concatenated in rank order. With a gradient
    (torch.distributed.nn's all_gather), the backward hands each rank the sum over ranks of the
    gradients of its own part."""
    if not is_dist():
        return x
    if x.requires_grad:
        from torch.distributed.nn.functional import all_gather
        return torch.cat(all_gather(x.contiguous()))
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Rank ``src``'s buffers (BatchNorm running statistics) on every rank."""
    if is_dist():
        for b in module.buffers():
            dist.broadcast(b.data, src)


def sync_rng(get_state, set_state) -> None:
    """Rank 0's RNG states on every rank."""
    if is_dist():
        set_state(broadcast_object(get_state()))


def shard(n: int) -> range:
    """This rank's contiguous block of range(n); the blocks in rank order cover range(n)."""
    step = -(-n // world_size())
    r = rank()
    return range(min(n, r * step), min(n, (r + 1) * step))


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
