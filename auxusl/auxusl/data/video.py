"""Tracklets as model input: random clips for training and clustering, every frame for testing.

``sample_clip`` is the original's ``random`` sampling (``preprocessor.py``): the clip starts
uniformly in ``[0, max(0, n - seq_len - 1)]`` (the extra -1 means the last full window is never
drawn), takes up to ``seq_len`` consecutive frames, and a shorter clip is padded by cycling
its frames ([a, b] -> [a, b, a, b]). The start is drawn from Python's ``random``. Test time
(``sample='all'``) uses every frame; ``FrameDataset`` feeds them frame by frame and the
tracklet feature is the mean over its frames (``common_eval.pool_tracklets``), which is what
the original's batch-of-one clips through the eval-mode network compute.
"""
from __future__ import annotations

import random

import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import CorruptImageError


def read_image(path: str) -> Image.Image:
    """The frame at ``path`` as RGB, fully decoded; CorruptImageError naming the file otherwise.

    (The original retries forever on an unreadable file; here it stops with the file's name.)
    """
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise CorruptImageError(f"frame {path} does not exist (was the dataset changed while the run "
                                "was going?)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(f"cannot read image {path} ({exc}); the file is damaged or not an image: "
                                "replace it with a good copy") from None


class FrameReader:
    """Decodes frames, optionally keeping them in memory (DATALOADER.CACHE_IMAGES): the decoded
    frames, and the test-transformed tensors (a deterministic transform) in ``tensors``."""

    def __init__(self, cache: bool = False):
        self.cache: dict | None = {} if cache else None
        self.tensors: dict | None = {} if cache else None

    def __call__(self, path: str) -> Image.Image:
        if self.cache is None:
            return read_image(path)
        img = self.cache.get(path)
        if img is None:
            img = self.cache[path] = read_image(path)
        return img


def clip_indices(n: int, seq_len: int, rng=random) -> tuple[list[int], list[int]]:
    """(clip frame indices padded to seq_len by cycling, the sampled indices before padding)."""
    start = rng.randint(0, max(0, n - seq_len - 1))
    end = min(start + seq_len, n)
    sampled = list(range(start, end))
    clip = list(sampled)
    i = 0
    while len(clip) < seq_len:
        clip.append(clip[i])
        i += 1
    return clip, sampled


class ClipDataset(Dataset):
    """items: (frame_paths, label, camid); returns (clip T x C x H x W, label, camid, item index).

    Each __getitem__ draws a new random clip (the training loader)."""

    def __init__(self, items, seq_len: int, transform, reader: FrameReader | None = None):
        self.items = list(items)
        self.seq_len = seq_len
        self.transform = transform
        self.reader = reader or FrameReader()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        paths, label, cam = self.items[index][:3]
        clip, _ = clip_indices(len(paths), self.seq_len)
        frames = [self.transform(self.reader(paths[i])) for i in clip]
        return torch.stack(frames), int(label), int(cam), index


class FrameDataset(Dataset):
    """Single frames (paths) through a deterministic transform; returns (image, position).
    With a caching reader the transformed frames are kept (the test transform is the only
    deterministic one)."""

    def __init__(self, paths, transform, reader: FrameReader | None = None):
        self.paths = list(paths)
        self.transform = transform
        self.reader = reader or FrameReader()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path, tensors = self.paths[i], self.reader.tensors
        if tensors is None:
            return self.transform(self.reader(path)), i
        img = tensors.get(path)
        if img is None:
            img = tensors[path] = self.transform(self.reader(path))
        return img, i
