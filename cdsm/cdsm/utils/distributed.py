"""Helpers for ``torchrun`` (DistributedDataParallel); in a single process each is the identity.

The process group comes from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*):
nccl on CUDA, gloo on the CPU.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    """torchrun's environment (also ``--nproc_per_node=1``: DDP and nccl/gloo with one process)."""
    return "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def init_from_env(device_type: str) -> tuple[int, int]:
    """Joins the group when torchrun started this process (any process count, 1 included);
    returns (rank, world size)."""
    if launched_by_torchrun() and not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # rank 0 alone clusters and evaluates while the others wait: a long timeout
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
    return rank(), world_size()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def broadcast_object(obj, src: int = 0):
    """rank src's (picklable) obj on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def run_on_main(fn):
    """fn() computed on rank 0 and its result (or its exception, raised) on every rank."""
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
    """Every rank's part (lengths may differ) concatenated in rank order, on part's device."""
    if not is_dist():
        return part
    parts = [None] * world_size()
    dist.all_gather_object(parts, part.detach().cpu())
    return torch.cat(parts).to(part.device)


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x (equal shapes, no gradient) concatenated in rank order."""
    if not is_dist():
        return x
    device = x.device
    if dist.get_backend() == "nccl":  # nccl moves CUDA tensors only (the batch indexes are on the CPU)
        x = x.cuda()
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts).to(device)


def broadcast_state(module: torch.nn.Module, src: int = 0, buffers_only: bool = False) -> None:
    """rank src's buffers (BN running statistics), and parameters unless buffers_only, everywhere."""
    if is_dist():
        tensors = list(module.buffers()) + ([] if buffers_only else list(module.parameters()))
        for t in tensors:
            dist.broadcast(t.data, src)


def shard(n: int) -> range:
    """The contiguous block of range(n) this rank handles (rank order = dataset order)."""
    step = -(-n // world_size())
    r = rank()
    return range(min(n, r * step), min(n, (r + 1) * step))


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
