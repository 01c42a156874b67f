"""A sample = one image or one tracklet, returned as a (frames, 3, H, W) tensor (spec B3).

Training draws ``num_samples`` frames per tracklet (without replacement when the tracklet is long
enough, with replacement otherwise) and sorts them by name; evaluation takes every frame, at most
``max_frames`` of them (a random subset of longer tracklets). Random draws use python's
``random`` (seeded per DataLoader worker by torch), as the original did.

``cache`` (a dict shared by the Preprocessors of a run; ``--cache_images``) keeps every decoded
image in memory, so each file is read and decoded once per run instead of once per epoch and
evaluation. The transforms still run on every access (the training ones are random). It lives in
the process that reads: with DataLoader workers each worker fills its own copy and loses it at the
end of the epoch, so it helps with ``--workers 0`` (the smoke presets), and it holds the decoded
dataset in RAM (synthetic benchmark: about 40 MB; real datasets: gigabytes).
"""
from __future__ import annotations

import os
import random

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import default_collate


class CorruptImageError(RuntimeError):
    """An image that PIL cannot decode; the message names the file."""


def sample_frames(frames, num_samples: int, training: bool, max_frames: int) -> list:
    frames = list(frames)
    if training:
        if len(frames) >= num_samples:
            chosen = random.sample(frames, num_samples)
        else:
            chosen = random.choices(frames, k=num_samples)
        chosen.sort()
        return chosen
    if len(frames) > max_frames:  # bounded memory for very long tracklets
        return random.sample(frames, max_frames)
    return frames


def collate(batch) -> list:
    """Evaluation batches as a list of ``default_collate`` batches, one per frame count: a
    tracklet shorter than ``max_frames`` cannot be stacked with longer ones, so ``--eval_batch_size``
    > 1 groups a batch by length (one group when every length is equal, always for images);
    ``extract_features`` runs the groups one after the other and puts the features back in order
    by index. In eval mode BatchNorm does not depend on the batch: the features equal those of
    batch size 1 (the original's video setting)."""
    groups: dict = {}
    for item in batch:
        groups.setdefault(item[0].shape[0], []).append(item)
    return [default_collate(g) for g in groups.values()]


def read_image(path: str, origin_of=None) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        origin = origin_of(os.path.basename(path)) if origin_of is not None else None
        src = f" (converted from {origin})" if origin else ""
        raise CorruptImageError(
            f"cannot decode image {path}{src}: {exc}. Replace the file with a good copy from the "
            "official dataset (or delete the converted folder and its source image, then re-run)."
        ) from exc


class Preprocessor(torch.utils.data.Dataset):
    """Items: (frames tensor (S, 3, H, W), index, label). ``labels`` are the pseudo-labels
    (training) or None (evaluation, label -1); true identities never pass through here."""

    def __init__(self, samples, root: str, transform=None, labels=None, num_samples: int = 1,
                 is_training: bool = False, max_frames: int = 900, origin_of=None, cache: dict | None = None):
        self.samples = list(samples)
        self.root = root
        self.transform = transform
        self.labels = None if labels is None else [int(x) for x in labels]
        if self.labels is not None and len(self.labels) != len(self.samples):
            raise ValueError(f"{len(self.labels)} labels for {len(self.samples)} samples")
        self.num_samples = num_samples
        self.is_training = is_training
        self.max_frames = max_frames
        self.origin_of = origin_of  # converted name -> official file, looked up only on error
        self.cache = cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        frames = sample_frames(self.samples[index], self.num_samples, self.is_training, self.max_frames)
        tensors = []
        for fname in frames:
            path = os.path.join(self.root, fname)
            img = None if self.cache is None else self.cache.get(path)
            if img is None:
                img = read_image(path, self.origin_of)
                if self.cache is not None:
                    self.cache[path] = img
            tensors.append(self.transform(img) if self.transform is not None else img)
        label = -1 if self.labels is None else self.labels[index]
        return torch.stack(tensors, dim=0), index, label
