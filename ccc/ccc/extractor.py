"""Features of a trained 3C model for any images: ``FeatureExtractor`` (the public API) and
``list_inputs`` (the images of a folder, in a fixed order).

    from ccc import FeatureExtractor
    fx = FeatureExtractor("logs/log/model_best.pth.tar", device="cpu", batch_size=32)
    feats = fx("some/folder")                      # (N, D) float32, rows L2-normalised
    feats = fx(["a.jpg", "b.jpg"])                 # paths or PIL images

Everything comes from the checkpoint: the architecture and pooling (``arch``, ``pooling_type``),
the test transform (Resize to ``height`` x ``width``, bilinear; ImageNet mean/std) read from the
resolved configuration stored in it (key ``config``; the older ``args`` of this reproduction too).
The feature is what 3C ranks at evaluation: the eval-mode model's BN-neck output, L2-normalised
(``ccc.evaluation.extract_features`` on the same model gives the same numbers). An original 3C
``model_best.pth`` (weights only) needs the keyword overrides (``arch=``, ``pooling_type=``,
``height=``, ``width=``); without them it is read as 3C's defaults (resnet50, gem, 256 x 128).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import models
from .data.preprocessor import read_image
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform
from .errors import CheckpointError, InputError
from .utils.checkpoint import FORMAT, load_checkpoint, load_model_state, model_state

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MODEL_KEYS = ("arch", "pooling_type", "height", "width")
DEFAULTS = {"arch": "resnet50", "pooling_type": "gem", "height": 256, "width": 128}


def checkpoint_config(ckpt: dict) -> dict:
    """The resolved configuration a checkpoint was trained with ({} for an original 3C file)."""
    for key in ("config", "args"):
        if ckpt.get("format") == FORMAT and isinstance(ckpt.get(key), dict):
            return dict(ckpt[key])
    return {}


def list_inputs(folder) -> tuple[list[Path], list[str]]:
    """(paths, names) of every .jpg/.jpeg/.png/.bmp under ``folder`` (recursively, any case),
    sorted by relative path; hidden files and folders (``.*``, macOS ``._*``) are skipped;
    names = the relative paths (POSIX separators)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder {root} does not exist or is not a folder")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                path = Path(dirpath) / name
                found.append((path.relative_to(root).as_posix(), path))
    found.sort()
    return [p for _, p in found], [n for n, _ in found]



def resolve_device(name) -> torch.device:
    """"auto" (CUDA when there is one), "cpu", "cuda", "cuda:N"; a CUDA device that this machine
    does not have is an InputError (one line), not a driver traceback."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device {name!r} ({exc}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r}: no CUDA device is available here; use cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device

class FeatureExtractor:
    """A trained 3C model that maps images to L2-normalised float32 features (N x D)."""

    def __init__(self, checkpoint, device="cpu", batch_size: int = 32, *, arch: str | None = None,
                 pooling_type: str | None = None, height: int | None = None, width: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        source = "the given checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
        self.config = checkpoint_config(ckpt)
        given = {"arch": arch, "pooling_type": pooling_type, "height": height, "width": width}
        for key in MODEL_KEYS:
            value = given[key] if given[key] is not None else self.config.get(key, DEFAULTS[key])
            setattr(self, key, value)
        if self.arch not in models.names():
            raise CheckpointError(f"{source}: unknown architecture {self.arch!r}")
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        quiet = logging.getLogger("ccc.models.resnet")   # not "random initialisation": weights follow
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            self.model = models.create(self.arch, pretrained="none", pooling_type=self.pooling_type)
        finally:
            quiet.setLevel(level)
        load_model_state(self.model, model_state(ckpt), source)
        self.model.to(self.device).eval()
        self.transform = build_test_transform(self.height, self.width)
        self.feature_dim = self.model.num_features

    def preprocess(self, item) -> torch.Tensor:
        """One image (path or PIL image) as the model's normalised 3 x H x W input."""
        if isinstance(item, Image.Image):
            img = item.convert("RGB")
        elif isinstance(item, (str, os.PathLike)):
            img = read_image(str(item))
        else:
            raise InputError(f"expected an image path or a PIL image, got {type(item).__name__}")
        return self.transform(img)

    @torch.no_grad()
    def __call__(self, inputs) -> np.ndarray:
        if isinstance(inputs, (str, os.PathLike)):
            items, _ = list_inputs(inputs)
            if not items:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {inputs}")
        elif isinstance(inputs, Image.Image):
            items = [inputs]
        else:
            items = list(inputs)
        out = []
        for start in range(0, len(items), self.batch_size):
            batch = torch.stack([self.preprocess(x) for x in items[start:start + self.batch_size]])
            out.append(self.model(batch.to(self.device)).float().cpu())
        if not out:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return np.ascontiguousarray(torch.cat(out).numpy(), dtype=np.float32)   # normalised by the model
