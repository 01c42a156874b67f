"""Helpers for ``torchrun`` (DistributedDataParallel); without torchrun every helper is the
identity and a run is the single-process run.

The process group comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*):
nccl on CUDA (device = LOCAL_RANK), gloo on the CPU.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether torchrun started this process (also ``--nproc_per_node=1``: DDP and nccl/gloo with
    one process, what the adapter's ``--torchrun`` exercises)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_type: str) -> tuple[int, int]:
    """Joins the group when torchrun started this process; returns (rank, world size)."""
    if launched() and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # rank 0 alone evaluates and merges while the others wait: a long timeout
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                timeout=datetime.timedelta(hours=2))
    return rank(), world_size()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def broadcast_object(obj, src: int = 0):
    """rank src's obj on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def run_on_rank0(fn):
    """fn() on rank 0, its result on every rank; an exception it raised is re-raised everywhere."""
    if not is_dist():
        return fn()
    result = None
    if rank() == 0:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            result = exc
    result = broadcast_object(result)
    if isinstance(result, Exception):
        raise result
    return result


def gather_in_order(part: torch.Tensor) -> torch.Tensor:
    """Every rank's part (lengths may differ) concatenated in rank order."""
    if not is_dist():
        return part
    parts = [None] * world_size()
    dist.all_gather_object(parts, part.cpu())
    return torch.cat(parts).to(part.device)


def gather_equal(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x (equal shapes, no gradient) concatenated in rank order."""
    if not is_dist():
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    """The mean of x over the ranks (detached)."""
    if not is_dist():
        return x.detach()
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / world_size()


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """rank src's buffers (BN running statistics) on every rank."""
    if is_dist():
        for b in model.buffers():
            dist.broadcast(b.data, src)


def shard(n: int) -> range:
    """The contiguous block of range(n) this rank handles (rank order = dataset order)."""
    w, r = world_size(), rank()
    step = -(-n // w)
    return range(min(n, r * step), min(n, (r + 1) * step))


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
