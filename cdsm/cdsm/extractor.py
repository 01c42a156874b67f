"""Using a trained CDSM model: features of any images, from the checkpoint alone.

    from cdsm import FeatureExtractor
    extract = FeatureExtractor("logs/market/model_best.pth.tar", device="cpu")
    feats = extract("my_crops/")            # (N, D) float32 numpy array, rows L2-normalised
    feats = extract(["a.jpg", "b.jpg"])     # or image paths, or PIL images

The model (architecture, pooling, embedding size), the test-time input size and the
normalisation come from the checkpoint's stored configuration (key ``"config"``, written by
``examples/train.py``); the feature is what ``examples/test.py`` ranks: the eval-mode network's
L2-normalised BN-neck output of the *teacher* (the mean model, which CDSM evaluates and keeps in
model_best.pth.tar), after a bicubic resize to the training size and ImageNet normalisation.
Original CDSM checkpoints (no configuration) load too: their settings then default to the
paper's (ResNet-50, GeM, 256 x 128) unless given as keyword arguments.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import models
from .data.preprocessor import read_image
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform
from .errors import CDSMError
from .utils.checkpoint import checkpoint_config, load_checkpoint, load_model_state, model_state

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# the settings that build the test-time model; the paper's values for checkpoints without a config
MODEL_DEFAULTS = {"arch": "resnet50", "features": 0, "dropout": 0.0, "pooling_type": "gem",
                  "height": 256, "width": 128}


class InputError(CDSMError):
    """The images to extract cannot be found or read (printed as one ``error:`` line)."""


def list_inputs(folder) -> tuple[list[Path], list[str]]:
    """Every .jpg/.jpeg/.png/.bmp under ``folder``, recursively, sorted by relative path; hidden
    files and folders (``.name``, macOS's ``._name``) are skipped. Returns (paths, names), names
    being the relative paths ('/'-separated)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder {root} does not exist" if not root.exists()
                         else f"{root} is not a folder")
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append((rel.as_posix(), path))
    found.sort()
    return [p for _, p in found], [n for n, _ in found]


def resolve_device(name) -> torch.device:
    """"auto" (CUDA when there is one), "cpu", "cuda", "cuda:N"; a CUDA device on a machine
    without one is an InputError (one line), not a driver traceback."""
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


def model_settings(checkpoint: dict, **overrides) -> dict:
    """The test-time settings of a checkpoint: ``overrides`` (not None) > its config > defaults."""
    config = checkpoint_config(checkpoint)
    out = {}
    for key, default in MODEL_DEFAULTS.items():
        value = overrides.get(key)
        out[key] = value if value is not None else config.get(key, default)
    return out


def load_model(checkpoint: dict, source, which: str = "teacher", **overrides):
    """The eval-mode network of a loaded checkpoint and its settings (see ``model_settings``)."""
    settings = model_settings(checkpoint, **overrides)
    quiet = logging.getLogger("cdsm.models.resnet")  # its "random initialisation" note: the weights
    level = quiet.level                              # come from the checkpoint right after
    quiet.setLevel(logging.WARNING)
    try:
        model = models.create(settings["arch"], pretrained="none", pooling_type=settings["pooling_type"],
                              num_features=settings["features"], dropout=settings["dropout"])
    finally:
        quiet.setLevel(level)
    load_model_state(model, model_state(checkpoint, which), source)
    return model.eval(), settings


class FeatureExtractor:
    """``FeatureExtractor(checkpoint, device="cpu", batch_size=32)(inputs)`` -> (N, D) float32
    numpy array, L2-normalised rows, in the order of ``inputs``.

    inputs: a folder (every image under it, as ``list_inputs`` orders them), or a list of image
    paths and/or PIL images. ``which``: "teacher" (default; what CDSM evaluates) or "student"
    (a full checkpoint.pth.tar holds both). Keyword overrides (arch, features, dropout,
    pooling_type, height, width) replace the checkpoint's settings, for the original's checkpoints.
    """

    def __init__(self, checkpoint, device="cpu", batch_size: int = 32, which: str = "teacher", **overrides):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.checkpoint_path = Path(checkpoint)
        ckpt = load_checkpoint(self.checkpoint_path)
        self.config = checkpoint_config(ckpt)
        model, self.settings = load_model(ckpt, self.checkpoint_path, which, **overrides)
        self.model = model.to(self.device)
        self.batch_size = int(batch_size)
        self.height, self.width = int(self.settings["height"]), int(self.settings["width"])
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.transform = build_test_transform(self.height, self.width)
        self.feature_dim = int(self.model.num_features)

    def preprocess(self, item) -> torch.Tensor:
        """One image (path or PIL image) as the network's input tensor (3 x H x W)."""
        if isinstance(item, Image.Image):
            img = item.convert("RGB")
        elif isinstance(item, (str, Path)):
            if not Path(item).is_file():
                raise InputError(f"image {item} does not exist")
            img = read_image(str(item))
        else:
            raise InputError(f"expected an image path or a PIL image, got {type(item).__name__}")
        return self.transform(img)

    @torch.no_grad()
    def __call__(self, inputs) -> np.ndarray:
        if isinstance(inputs, (str, Path)):
            items, _ = list_inputs(inputs)
            if not items:
                raise InputError(f"no image (.jpg, .jpeg, .png, .bmp) under {inputs}")
        elif isinstance(inputs, Image.Image):
            items = [inputs]
        else:
            items = list(inputs)
        out = []
        for start in range(0, len(items), self.batch_size):
            batch = torch.stack([self.preprocess(x) for x in items[start:start + self.batch_size]])
            feats = self.model(batch.to(self.device)).float()
            out.append(torch.nn.functional.normalize(feats).cpu())  # already unit rows; kept exact
        if not out:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return torch.cat(out).numpy().astype(np.float32, copy=False)
