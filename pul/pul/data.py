"""The training batch stream (Keras ImageDataGenerator.flow + fit_generator, made stateless).

The original fed ``datagen.flow(images, labels, batch_size=16)`` to ``fit_generator`` with
``steps_per_epoch = len(images)/16 + 1``. That iterator walks a fresh random permutation of the
images in batches of 16 (the last batch of a pass is smaller), starts a new permutation when a pass
ends, and is never reset between epochs, so an "epoch" of ceil(N/16 + 1) steps runs one to two
batches into the next pass. ``BatchStream`` produces exactly this sequence, but batch g of the
stream is a pure function of (seed, g): pass p = g // ceil(N/B) uses permutation p drawn from its
own generator, and the augmentation of batch g from another. Resuming at any step (or prefetching
ahead) therefore cannot change which images and which warps the network sees.
"""
from __future__ import annotations

import math

import numpy as np

from .preprocessing import caffe_preprocess, draw_affine_params, warp_nearest


def steps_per_epoch(num_images: int, batch_size: int, max_steps: int | None = None) -> int:
    """ceil(N / B + 1): Keras 2.0.4 drew batches while steps_done < N/B + 1 (a float); at most
    ``max_steps`` when given (the rehearsal's cap)."""
    steps = math.ceil(num_images / batch_size + 1)
    return min(steps, max_steps) if max_steps else steps


class BatchStream:
    """Batches (x, y) of caffe-preprocessed, augmented images and their targets.

    images: uint8 (N, H, W, 3); targets: (N, C) one-hot (or any per-image array); seed: a tuple
    of ints naming this stream (e.g. (run seed, stage, iteration))."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, batch_size: int, seed: tuple,
                 augment: bool = True, rotation_range: float = 20.0, width_shift_range: float = 0.2,
                 height_shift_range: float = 0.2):
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        if len(images) == 0:
            raise ValueError("cannot train on an empty set of images")
        self.images, self.targets = images, targets
        self.batch_size = int(batch_size)
        self.seed = tuple(int(s) for s in seed)
        self.augment = augment
        self.ranges = (rotation_range, height_shift_range, width_shift_range)
        self.n = len(images)
        self.batches_per_pass = math.ceil(self.n / self.batch_size)

    def indices(self, g: int) -> np.ndarray:
        p, j = divmod(int(g), self.batches_per_pass)
        perm = np.random.default_rng((*self.seed, 0, p)).permutation(self.n)
        return perm[j * self.batch_size:(j + 1) * self.batch_size]

    def images_seen(self, num_batches: int) -> int:
        """The images of batches 0 .. num_batches - 1 (the last batch of a pass is smaller)."""
        passes, rest = divmod(int(num_batches), self.batches_per_pass)
        return passes * self.n + rest * self.batch_size

    def batch(self, g: int):
        idx = self.indices(g)
        x = self.images[idx]
        if self.augment:
            rng = np.random.default_rng((*self.seed, 1, int(g)))
            rot, hs, ws = self.ranges
            params = draw_affine_params(rng, len(idx), x.shape[1], x.shape[2], rotation_range=rot,
                                        height_shift_range=hs, width_shift_range=ws)
            x = warp_nearest(x, params)
        return caffe_preprocess(x), self.targets[idx]

    def generator(self, start: int = 0):
        """Endless: batch start, start + 1, ..."""
        g = int(start)
        while True:
            yield self.batch(g)
            g += 1
