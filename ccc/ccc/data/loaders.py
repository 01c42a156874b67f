"""DataLoaders: the identity-sampled training stream and the plain extraction loader."""
from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from ..errors import NoClusterError
from .preprocessor import ImageDataset
from .sampler import DistributedBatchSampler, RandomMultipleGallerySampler
from .transforms import build_test_transform, build_train_transform

log = logging.getLogger(__name__)


class IterLoader:
    """An endless view of a DataLoader: ``next()`` starts a new pass when one runs out, so an
    epoch is exactly ``length`` batches whatever the size of the pseudo-labelled set."""

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


def build_train_loader(items, height: int, width: int, batch_size: int, num_instances: int,
                       iters: int, workers: int = 0, seed=None, pad: int = 10,
                       pin_memory: bool = False, use_cameras: bool = True, rank: int = 0,
                       world: int = 1) -> IterLoader:
    """items: (path, pseudo-label, camid, index) of the clustered training images.

    ``num_instances > 0`` uses 3C's identity sampler (seeded with ``seed``; ``use_cameras=False``
    is ``--no-cam``); 0 shuffles plainly. ``world > 1`` (torchrun): this rank's contiguous
    ``batch_size / world`` slice of every global batch (DistributedBatchSampler).
    """
    dataset = ImageDataset(items, build_train_transform(height, width, pad=pad))
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    if num_instances > 0:
        sampler = RandomMultipleGallerySampler(items, num_instances, seed=seed, use_cameras=use_cameras)
        per_pass = len(sampler)
    else:
        sampler, per_pass = None, len(items)
    drop_last = True
    if per_pass == 0:
        raise NoClusterError("no pseudo-identity has two images: the identity sampler has nothing to "
                             "draw (3C skips single-image ids)")
    if per_pass < batch_size:
        log.warning(f"WARNING: one pass over the pseudo-labelled set gives {per_pass} images, fewer "
                    f"than a batch of {batch_size}: this epoch uses smaller batches")
        drop_last = False
    if world > 1:
        if sampler is None:   # the same shuffle on every rank (same seed)
            sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
        if per_pass < world:
            raise NoClusterError(f"one pass over the pseudo-labelled set gives {per_pass} images, fewer than "
                                 f"the {world} processes")
        batches = DistributedBatchSampler(sampler, batch_size, drop_last, rank, world)
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory,
                            persistent_workers=False)
        return IterLoader(loader, iters)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                        shuffle=sampler is None, generator=generator if sampler is None else None,
                        num_workers=workers, pin_memory=pin_memory, drop_last=drop_last,
                        persistent_workers=False)
    return IterLoader(loader, iters)


def build_test_loader(items, height: int, width: int, batch_size: int, workers: int = 0,
                      pin_memory: bool = False) -> DataLoader:
    dataset = ImageDataset(items, build_test_transform(height, width))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=pin_memory)
