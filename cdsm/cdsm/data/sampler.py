"""The identity sampler of SpCL/ClusterContrast/CDSM ("RandomMultipleGallerySampler").

One pass over the pseudo-labelled training list:
1. shuffle the pseudo-ids;
2. for each id, pick a random anchor image;
3. add ``num_instances - 1`` images of that id taken from *other cameras* (without replacement
   when there are at least ``num_instances`` such candidates, with replacement otherwise); if
   the id was seen by one camera only, take them from its other images in the same way; an id
   with a single image contributes only its anchor.
The DataLoader cuts the concatenated list into consecutive batches, so a batch of B holds
B / num_instances pseudo-ids with num_instances images each (until a single-image id shifts
the grouping, as in the original).

All draws come from the sampler's own ``numpy.random.Generator`` (seeded per epoch by the
caller), so a pass is reproducible without touching the global RNGs.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from torch.utils.data import Sampler


class RandomMultipleGallerySampler(Sampler):
    """data_source: sequence of tuples whose items 1 and 2 are (pseudo-label, camid)."""

    def __init__(self, data_source, num_instances: int = 4, seed=None):
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        self.num_instances = num_instances
        self.rng = np.random.default_rng(seed)
        index_of = defaultdict(list)
        cams_of = defaultdict(list)
        for index, item in enumerate(data_source):
            pid, cam = int(item[1]), int(item[2])
            if pid < 0:
                continue
            index_of[pid].append(index)
            cams_of[pid].append(cam)
        self.pids = list(index_of)
        self.index_of = {p: np.asarray(v, dtype=np.int64) for p, v in index_of.items()}
        self.cams_of = {p: np.asarray(v, dtype=np.int64) for p, v in cams_of.items()}

    def __len__(self) -> int:
        """The exact length of one pass (an id with one image gives 1 index, others num_instances)."""
        return sum(1 if len(v) == 1 else self.num_instances for v in self.index_of.values())

    def __iter__(self):
        rng, K = self.rng, self.num_instances
        out: list[int] = []
        for k in rng.permutation(len(self.pids)):
            pid = self.pids[k]
            idx, cams = self.index_of[pid], self.cams_of[pid]
            anchor = int(rng.integers(len(idx)))
            out.append(int(idx[anchor]))
            if K == 1:
                continue
            pool = np.flatnonzero(cams != cams[anchor])
            if len(pool) == 0:
                pool = np.delete(np.arange(len(idx)), anchor)
                if len(pool) == 0:
                    continue
            chosen = rng.choice(pool, size=K - 1, replace=len(pool) < K)
            out.extend(int(idx[j]) for j in chosen)
        return iter(out)


class DistributedBatchSampler(Sampler):
    """This rank's part of the single-process batches: ``sampler`` cut into global batches of
    ``batch_size``, of which rank r takes the r-th contiguous 1/world slice. Every rank builds
    its sampler from the same per-epoch seed, so all ranks walk the same pass and the slices in
    rank order make up the single-process batch."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, rank: int, world: int):
        if batch_size % world:
            raise ValueError(f"a batch of {batch_size} cannot be split evenly over {world} processes")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _part(self, batch: list[int]) -> list[int]:
        step = len(batch) // self.world
        return batch[self.rank * step:(self.rank + 1) * step]

    def __iter__(self):
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield self._part(batch)
                batch = []
        if batch and not self.drop_last and len(batch) >= self.world:
            yield self._part(batch)
