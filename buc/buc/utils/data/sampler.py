"""The training batches of a torchrun run: the single-process batches, split across ranks.

BUC trains with a plain shuffled loader (``DataLoader(shuffle=True, drop_last=True)``). In a
distributed run every rank draws the pass as that loader would, rank 0's order is broadcast (so
rank 0 draws exactly what the single process draws from the same RNG state), the order is cut
into global batches of ``batch_size`` and each rank takes its contiguous 1/world slice of every
batch: the slices, concatenated in rank order, are the single-process batches.
"""
from __future__ import annotations

from torch.utils.data import Sampler

from .. import distributed as du


class DistributedBatchSampler(Sampler):
    def __init__(self, sampler, batch_size: int, drop_last: bool, rank: int, world: int):
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} is not divisible by the {world} processes "
                             f"(the global batch is split evenly); use a multiple of {world}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = du.broadcast_object(list(self.sampler))   # rank 0's pass on every rank
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            if len(batch) < self.batch_size and (self.drop_last or len(batch) < self.world):
                return
            step = len(batch) // self.world
            yield batch[self.rank * step:(self.rank + 1) * step]
