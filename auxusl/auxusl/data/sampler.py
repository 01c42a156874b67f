"""The identity sampler (``RandomMultipleGallerySampler``) over pseudo-labelled tracklets.

One pass: shuffle the pseudo-ids (torch.randperm); for each, a random anchor tracklet
(Python's random.choice); then ``num_instances - 1`` tracklets of that id from *other cameras*
(np.random.choice, without replacement when there are at least ``num_instances`` candidates,
otherwise with replacement); if the id has no other camera, from its other tracklets in the
same way; an id with a single tracklet contributes its anchor only. The DataLoader cuts the
concatenation into batches. The global RNGs are used, as in the original, so a seed (and the
RNG state restored on resume) fixes every pass.
"""
from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import torch
from torch.utils.data import Sampler


class RandomMultipleGallerySampler(Sampler):
    """data_source: sequence of (frame_paths, pseudo-label, camid)."""

    def __init__(self, data_source, num_instances: int = 4):
        if num_instances < 1:
            raise ValueError(f"DATALOADER.NUM_INSTANCE must be >= 1, got {num_instances}")
        self.num_instances = num_instances
        self.pid_index: dict[int, list[int]] = defaultdict(list)
        self.pid_cam: dict[int, list[int]] = defaultdict(list)
        for index, item in enumerate(data_source):
            pid, cam = int(item[1]), int(item[2])
            if pid < 0:
                continue
            self.pid_index[pid].append(index)
            self.pid_cam[pid].append(cam)
        self.pids = list(self.pid_index)

    def __len__(self) -> int:
        return len(self.pids) * self.num_instances

    def pass_length(self) -> int:
        """The exact number of indices one pass yields."""
        return sum(1 if len(v) == 1 else self.num_instances for v in self.pid_index.values())

    def __iter__(self):
        out: list[int] = []
        for k in torch.randperm(len(self.pids)).tolist():
            pid = self.pids[k]
            index, cams = self.pid_index[pid], self.pid_cam[pid]
            anchor = random.choice(index)
            out.append(anchor)
            pos = index.index(anchor)
            others = [j for j, c in enumerate(cams) if c != cams[pos]]
            if not others:
                others = [j for j, i in enumerate(index) if i != anchor]
                if not others:
                    continue
            chosen = np.random.choice(others, size=self.num_instances - 1,  # noqa: NPY002
                                      replace=len(others) < self.num_instances)
            out.extend(index[j] for j in chosen)
        return iter(out)


class DistributedBatchSampler(Sampler):
    """The single-process batches of ``sampler`` (global batches of ``batch_size``), of which this
    rank takes its contiguous 1/world slice. ``sync`` (called at the start of every pass) makes
    the ranks' RNGs equal, so that every rank draws the same pass."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, rank: int, world: int, sync=None):
        if batch_size % world:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world} processes")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.rank, self.world, self.sync = rank, world, sync

    def __len__(self) -> int:
        n = self.sampler.pass_length()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _slice(self, batch):
        step = len(batch) // self.world
        return batch[self.rank * step : (self.rank + 1) * step]

    def __iter__(self):
        if self.sync is not None:
            self.sync()
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield self._slice(batch)
                batch = []
        if batch and not self.drop_last and len(batch) >= self.world:
            yield self._slice(batch)
