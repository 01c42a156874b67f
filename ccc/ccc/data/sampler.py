"""3C's identity samplers (``utils/sampler.py``): ``RandomMultipleGallerySampler`` and, with
``--no-cam``, ``RandomMultipleGallerySamplerNoCam``.

One pass over the pseudo-labelled training list:
1. shuffle the pseudo-ids;
2. for each id, pick a random anchor image;
3. add ``num_instances - 1`` more images of that id:
   * camera-aware (default): from the id's images taken by *other cameras* than the anchor's.
     With at least ``num_instances - 1`` of them, draw without replacement; with fewer, take
     all of them in shuffled order and fill the rest by drawing from the same other-camera
     images (with replacement only when still fewer than needed). If no other camera saw the
     id, do the same with its other images; an id with a single image is skipped.
   * ``no_cam``: the same drawing rule over the id's other images, whatever their camera.
The DataLoader cuts the concatenated list into consecutive batches (``drop_last``), so a batch
of B holds B / num_instances pseudo-ids with num_instances images each.

All draws come from the sampler's own ``numpy.random.Generator`` (seeded per epoch by the
caller), so a pass is reproducible without touching the global RNGs (the original draws from
torch's, python's and numpy's global RNGs).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from torch.utils.data import Sampler


def _draw(rng: np.random.Generator, pool: np.ndarray, k: int) -> np.ndarray:
    """k positions from ``pool``: without replacement if the pool is large enough; otherwise the
    whole pool shuffled, then the remainder drawn from the pool (with replacement if needed)."""
    if len(pool) >= k:
        return rng.choice(pool, size=k, replace=False)
    first = pool[rng.permutation(len(pool))]
    rest = k - len(pool)
    more = rng.choice(pool, size=rest, replace=len(pool) < rest)
    return np.concatenate([first, more])


class RandomMultipleGallerySampler(Sampler):
    """data_source: sequence of tuples whose items 1 and 2 are (pseudo-label, camid)."""

    def __init__(self, data_source, num_instances: int = 4, seed=None, use_cameras: bool = True):
        if num_instances < 1:
            raise ValueError(f"num_instances must be >= 1, got {num_instances}")
        self.num_instances = num_instances
        self.use_cameras = use_cameras
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
        """The exact length of one pass (ids with a single image are skipped)."""
        return sum(self.num_instances for v in self.index_of.values() if len(v) > 1 or self.num_instances == 1)

    def __iter__(self):
        rng, K = self.rng, self.num_instances
        out: list[int] = []
        for k in rng.permutation(len(self.pids)):
            pid = self.pids[k]
            idx, cams = self.index_of[pid], self.cams_of[pid]
            anchor = int(rng.integers(len(idx)))
            if K == 1:
                out.append(int(idx[anchor]))
                continue
            pool = np.flatnonzero(cams != cams[anchor]) if self.use_cameras else np.array([], dtype=np.int64)
            if len(pool) == 0:
                pool = np.delete(np.arange(len(idx)), anchor)
                if len(pool) == 0:
                    continue  # a single image: 3C skips the id
            out.append(int(idx[anchor]))
            out.extend(int(idx[j]) for j in _draw(rng, pool, K - 1))
        return iter(out)


class DistributedBatchSampler(Sampler):
    """torchrun: the single-process batches of ``sampler`` (global batches of ``batch_size``,
    ``drop_last`` as the DataLoader's), of which this rank yields its contiguous 1/world slice.
    3C's sampler draws from its own generator, seeded per epoch alike on every rank, so every
    rank sees the same pass; rank order concatenates the slices back into the global batch. A
    short last batch (``drop_last`` False) is cut to a multiple of world (equal slices)."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, rank: int, world: int):
        if batch_size % world:
            raise ValueError(f"--batch-size {batch_size} is not divisible by the {world} processes: use a "
                             f"multiple of {world}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.drop_last or n % self.batch_size < self.world:
            return n // self.batch_size
        return n // self.batch_size + 1

    def _slice(self, batch: list[int]) -> list[int]:
        step = len(batch) // self.world
        return batch[self.rank * step:(self.rank + 1) * step]

    def __iter__(self):
        batch: list[int] = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield self._slice(batch)
                batch = []
        if batch and not self.drop_last and len(batch) >= self.world:
            yield self._slice(batch)
