"""Helpers for ``torchrun`` (DistributedDataParallel); a single process is unchanged.

The process group comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*):
nccl on CUDA, gloo on the CPU; torchrun with one process gets a group too (DDP over one rank:
the single-process arithmetic, through the distributed code path; the GPU check's --torchrun).
Every helper is the identity when no group is initialised.
"""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def init_from_env(device_type: str) -> tuple[int, int]:
    """Initialises the group when torchrun started this process; returns (rank, world size)."""
    by_torchrun = "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1
    if by_torchrun and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl" if device_type == "cuda" else "gloo"
        # rank 0 alone evaluates and clusters while the others wait: a long timeout
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    return rank(), world_size()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def backend() -> str | None:
    return dist.get_backend() if is_dist() else None


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """rank src's obj on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_in_order(part: torch.Tensor) -> torch.Tensor:
    """Concatenation of every rank's part in rank order (parts may differ in length)."""
    if not is_dist():
        return part
    parts = [None] * world_size()
    dist.all_gather_object(parts, part.cpu())
    return torch.cat(parts).to(part.device)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x (equal shapes) concatenated in rank order; gradients flow back to each
    rank's own part."""
    if not is_dist():
        return x
    if not x.requires_grad:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """rank src's buffers (BN running statistics) on every rank."""
    if is_dist():
        for b in model.buffers():
            dist.broadcast(b.data, src)


def sync_rng(get_state, set_state) -> None:
    """Rank 0's RNG states on every rank."""
    if is_dist():
        set_state(broadcast_object(get_state()))


def shard(n: int) -> range:
    """The contiguous block of range(n) this rank handles (rank order = dataset order)."""
    w, r = world_size(), rank()
    step = -(-n // w)
    return range(min(n, r * step), min(n, (r + 1) * step))


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
