"""Features of a trained BUC model for any images or tracklets: ``FeatureExtractor``.

    from buc import FeatureExtractor
    fx = FeatureExtractor("logs/market1501/model_best.pth.tar")
    feats = fx("my_crops/")                    # (N, d) float32, rows L2-normalised
    feats = fx(["a.jpg", "b.jpg"])             # or image paths / PIL images
    video = FeatureExtractor("logs/mars/model_best.pth.tar")
    feats = video("tracklets/")                # one row per sub-folder of frames
    feats = video([["t1/f1.jpg", "t1/f2.jpg"], [pil_a, pil_b]])   # tracklets as lists of frames

The feature is BUC's evaluation feature (``evaluators.extract_features``): pool5 of the ResNet,
averaged over the frames of a tracklet (images: one frame), then L2-normalised; the embedding
branch is not used. Images are resized to the checkpoint's test size with the test transform
(bilinear ``RectScale``, ImageNet mean/std). A tracklet longer than the checkpoint's
``max_frames`` (900) is pooled over a random subset of that many frames, as the evaluator does.

Everything comes from the checkpoint's stored ``config`` (``args`` in checkpoints written before
it existed): the backbone, the embedding size, the input size, the frame limit and whether the
dataset is a video one. Checkpoints of the original code (Open-ReID's ``state_dict``, no
settings) load too; their architecture then comes from the keyword overrides or the original's
defaults (ResNet-50, 2048-d, 256x128, images).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from . import datasets, models
from .utils.data import CorruptImageError, sample_frames
from .utils.data.preprocessor import read_image
from .utils.data.transforms import IMAGENET_MEAN, IMAGENET_STD, test_transform
from .utils.runfiles import BUCError
from .utils.serialization import load_checkpoint

__all__ = ["FeatureExtractor", "IMAGE_SUFFIXES", "checkpoint_config", "list_inputs", "load_model",
           "model_settings"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# the original's values, for checkpoints that store no settings (Open-ReID / original BUC files)
DEFAULTS = {"arch": "avg_pool", "fea": 2048, "height": 256, "width": 128, "max_frames": 900,
            "fixed_layer": None, "video": None}


def checkpoint_config(ckpt: dict) -> dict:
    """The settings a checkpoint was trained with: its ``config`` (resolved), else the ``args`` of
    this project's earlier checkpoints, else nothing (the original's files)."""
    for key in ("config", "args"):
        if isinstance(ckpt.get(key), dict):
            return dict(ckpt[key])
    return {}


def model_settings(config: dict, **overrides) -> dict:
    """arch, fea, height, width, max_frames, fixed_layer (bool) and video (bool): overrides given
    (not None) win over the checkpoint's config, which wins over the original's defaults."""
    s = {k: overrides[k] if overrides.get(k) is not None else config.get(k, v) for k, v in DEFAULTS.items()}
    s = {k: (DEFAULTS[k] if v is None and DEFAULTS[k] is not None else v) for k, v in s.items()}
    if s["video"] is None:
        try:
            s["video"] = datasets.get_class(config["dataset"]).is_video
        except (KeyError, TypeError):
            s["video"] = False
    fixed = s["fixed_layer"]
    s["fixed_layer"] = s["video"] if fixed in (None, "auto") else fixed in (True, "yes")
    return s


def load_model(ckpt: dict, settings: dict, source="the checkpoint") -> models.End2End_AvgPooling:
    """End2End_AvgPooling with the checkpoint's weights (``model``, or Open-ReID's ``state_dict``;
    a ``module.`` prefix of DataParallel is dropped), in eval mode."""
    weights = ckpt.get("model", ckpt.get("state_dict"))
    if not isinstance(weights, dict):
        raise BUCError(f"{source} holds no model weights (no 'model' or 'state_dict' entry); pass a BUC "
                       "checkpoint.pth.tar or model_best.pth.tar")
    model = models.create(settings["arch"], pretrained="none", embedding_size=settings["fea"],
                          fixed_layer=settings["fixed_layer"])
    try:
        model.load_state_dict({k.removeprefix("module."): v for k, v in weights.items()})
    except RuntimeError as exc:
        raise BUCError(f"{source}: {str(exc).splitlines()[0]}; pass the -a/-f the checkpoint was trained "
                       "with") from None
    return model.eval()


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _visible(rel: Path) -> bool:
    return not any(part.startswith(".") for part in rel.parts)   # dotfiles, macOS ._* files


def list_inputs(folder, video: bool = False) -> tuple[list, list[str]]:
    """(items, names) of a folder. Images: every .jpg/.jpeg/.png/.bmp under it, recursively,
    sorted by relative path (hidden files and folders skipped); names = relative paths. Video:
    every sub-folder that directly holds frames is one tracklet (its frames sorted by name);
    names = relative folder paths ("." for frames directly in ``folder``)."""
    root = Path(folder)
    if not root.is_dir():
        raise BUCError(f"{root}: no such folder")
    files = sorted((p for p in root.rglob("*") if p.is_file() and _is_image(p)
                    and _visible(p.relative_to(root))), key=lambda p: p.relative_to(root).as_posix())
    if not video:
        return [str(p) for p in files], [p.relative_to(root).as_posix() for p in files]
    tracklets: dict[str, list[str]] = {}
    for p in files:
        tracklets.setdefault(p.parent.relative_to(root).as_posix(), []).append(str(p))
    names = sorted(tracklets)
    return [tracklets[n] for n in names], names



def resolve_device(name) -> torch.device:
    """"cpu", "cuda", "cuda:N" (or "auto": CUDA when there is one); a device this machine does
    not have is a BUCError (one line), not a driver traceback."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise BUCError(f"unknown device {name!r} ({exc}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BUCError(f"device {name!r}: no CUDA device is available here; use cpu (or auto)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BUCError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device

class FeatureExtractor:
    """BUC's evaluation features (L2-normalised pool5, frame-averaged) of images or tracklets.

    checkpoint: a path (model_best.pth.tar, checkpoint.pth.tar, an original Open-ReID/BUC file)
    or a checkpoint dict already loaded. ``overrides`` (arch, fea, height, width, max_frames,
    video) replace the checkpoint's settings; checkpoints that store none need them unless they
    are the original's defaults."""

    def __init__(self, checkpoint, device: str = "cpu", batch_size: int = 32, **overrides):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        device = resolve_device(device)   # before loading anything: a bad device fails fast
        source = "the checkpoint"
        if not isinstance(checkpoint, dict):
            source = str(checkpoint)
            checkpoint = load_checkpoint(checkpoint)
        self.config = checkpoint_config(checkpoint)
        self.settings = model_settings(self.config, **overrides)
        self.is_video = self.settings["video"]
        self.height, self.width = self.settings["height"], self.settings["width"]
        self.max_frames = self.settings["max_frames"]
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.transform = test_transform(self.height, self.width)
        self.device = device
        self.batch_size = batch_size
        self.model = load_model(checkpoint, self.settings, source).to(self.device)

    @property
    def dim(self) -> int:
        return self.model.CNN.out_features

    # ---------------------------------------------------------------- inputs
    def _image(self, item) -> torch.Tensor:
        if isinstance(item, Image.Image):
            img = item.convert("RGB")
        elif isinstance(item, (str, os.PathLike)):
            if not Path(item).is_file():
                raise CorruptImageError(f"cannot read image {item}: no such file")
            img = read_image(str(item))
        else:
            raise TypeError(f"an image is a path or a PIL image, got {type(item).__name__}")
        return self.transform(img)

    def _samples(self, inputs) -> list[list]:
        """Every input as a list of frames (an image: one frame)."""
        if isinstance(inputs, (str, os.PathLike)):
            items, _ = list_inputs(inputs, self.is_video)
            if not items:
                raise BUCError(f"{inputs}: no {'tracklet folders with ' if self.is_video else ''}images "
                               f"({', '.join(IMAGE_SUFFIXES)})")
            return [list(t) for t in items] if self.is_video else [[p] for p in items]
        if isinstance(inputs, Image.Image):
            inputs = [inputs]
        out = []
        for item in inputs:
            if self.is_video and isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
                frames = list_inputs(item, video=False)[0]      # a tracklet given as its folder
                if not frames:
                    raise BUCError(f"{item}: a tracklet folder without frames")
                out.append(frames)
            elif self.is_video and isinstance(item, (list, tuple)):
                if not item:
                    raise ValueError("an empty tracklet (no frames)")
                out.append(list(item))
            else:
                out.append([item])
        return out

    # ---------------------------------------------------------------- features
    @torch.no_grad()
    def pool5(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw pool5 (N, d) of a batch of transformed frames (N, 3, H, W): the per-frame network."""
        return self.model.CNN(batch.to(self.device)).float().cpu()

    @torch.no_grad()
    def __call__(self, inputs) -> np.ndarray:
        samples = self._samples(inputs)
        if not samples:
            return np.zeros((0, self.dim), np.float32)
        self.model.eval()
        if all(len(s) == 1 for s in samples) and not self.is_video:
            feats = []
            for i in range(0, len(samples), self.batch_size):
                chunk = torch.stack([self._image(s[0]) for s in samples[i:i + self.batch_size]])
                feats.append(F.normalize(self.pool5(chunk), p=2, dim=1))
            return torch.cat(feats).numpy().astype(np.float32, copy=False)
        out = torch.empty(len(samples), self.dim)
        for n, frames in enumerate(samples):    # a tracklet: mean pool5 over its frames, then L2
            frames = sample_frames(frames, 1, False, self.max_frames) if len(frames) > self.max_frames \
                else frames
            total = torch.zeros(self.dim)
            for i in range(0, len(frames), self.batch_size):
                chunk = torch.stack([self._image(f) for f in frames[i:i + self.batch_size]])
                total += self.pool5(chunk).sum(0)
            out[n] = F.normalize(total / len(frames), p=2, dim=0)
        return out.numpy().astype(np.float32, copy=False)
