"""The training stream (identity sampler + random clips) and an endless iterator over it."""
from __future__ import annotations

import logging

from torch.utils.data import DataLoader

from .sampler import DistributedBatchSampler, RandomMultipleGallerySampler
from .video import ClipDataset

log = logging.getLogger(__name__)


class IterLoader:
    """``next()`` starts a new pass when one runs out, so an epoch is exactly ``length`` batches."""

    def __init__(self, loader: DataLoader, length: int):
        self.loader = loader
        self.length = length
        self._iter = None

    def __len__(self) -> int:
        return self.length

    def new_epoch(self) -> None:
        self._iter = iter(self.loader)

    def next(self):
        if self._iter is None:
            self.new_epoch()
        try:
            return next(self._iter)
        except StopIteration:
            self._iter = iter(self.loader)
            return next(self._iter)


def build_train_loader(items, seq_len: int, transform, batch_size: int, num_instances: int, iters: int,
                       workers: int = 0, reader=None, pin_memory: bool = False, rank: int = 0, world: int = 1,
                       sync=None) -> IterLoader:
    """items: (frame_paths, pseudo-label, camid) of the clustered tracklets (sorted, as the original).
    world > 1: this rank's slice of each global batch of ``batch_size`` (DistributedBatchSampler)."""
    items = sorted(items)
    sampler = RandomMultipleGallerySampler(items, num_instances)
    drop_last = True
    if sampler.pass_length() < batch_size:
        log.warning(f"WARNING: one pass over the {len(items)} pseudo-labelled tracklets gives "
                    f"{sampler.pass_length()} clips, fewer than a batch of {batch_size}: this epoch uses "
                    "smaller batches")
        drop_last = False
    dataset = ClipDataset(items, seq_len, transform, reader)
    if world > 1:
        batches = DistributedBatchSampler(sampler, batch_size, drop_last, rank, world, sync)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory)
        return IterLoader(loader, iters)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, num_workers=workers,
                        pin_memory=pin_memory, drop_last=drop_last)
    return IterLoader(loader, iters)
