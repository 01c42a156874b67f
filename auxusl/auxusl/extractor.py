"""Features of a trained AuxUSL model for your own tracklets, with nothing but its checkpoint.

    from auxusl import FeatureExtractor
    fx = FeatureExtractor("logs/x/model_mAP_best.pth.tar")   # device="cpu", batch_size=32
    feats = fx("my_tracklets/")          # a folder whose sub-folders hold the frames of a tracklet
    feats = fx([["a/1.jpg", "a/2.jpg"], [pil_image]])       # or tracklets as lists of frames

What is computed is what the evaluation ranks: the *teacher* network of the checkpoint
("state_dict"), each frame resized to the test size (INPUT.SIZE_TEST) and normalised
(INPUT.PIXEL_MEAN/STD) as the checkpoint's stored configuration says, its BN-neck feature
L2-normalised, the frames' features averaged over the tracklet (``evaluation.tracklet_features``).
The returned rows are then L2-normalised (``normalize=False`` gives the mean itself, which is
what ``examples/test.py`` ranks with squared Euclidean distances). A checkpoint of the original
code carries no configuration: the defaults (or ``opts``, KEY VALUE pairs) give the architecture
and input size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import setup_cfg
from .data import FrameReader, build_test_transform
from .errors import CheckpointError, ConfigError, CorruptImageError
from .utils import copy_weights, load_checkpoint

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _visible(rel: Path) -> bool:
    return not any(part.startswith(".") for part in rel.parts)  # dotfiles and macOS "._*"


def list_inputs(folder) -> tuple[list[list[str]], list[str]]:
    """(tracklets, names): every sub-folder of ``folder`` (recursively, the folder itself included)
    that directly holds frames is one tracklet, its frames sorted by name; tracklets sorted by
    relative path, which is the name ("." for frames directly in ``folder``). Hidden files and
    folders are skipped."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    groups: dict[Path, list[str]] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and _visible(rel):
            groups.setdefault(rel.parent, []).append(str(p))
    names = sorted(groups, key=lambda r: r.as_posix())
    return [sorted(groups[r]) for r in names], [r.as_posix() for r in names]


class _Image:
    """A PIL image as a frame key (PIL images are not hashable; this one hashes by identity)."""

    def __init__(self, image):
        self.image = image


class _Reader(FrameReader):
    """Frames given as paths or PIL images."""

    def __call__(self, frame):
        if isinstance(frame, _Image):
            return frame.image.convert("RGB")
        return super().__call__(str(frame))


def checkpoint_config(ckpt: dict, opts=()):
    """The resolved configuration of a checkpoint: its stored one (defaults for the original's
    checkpoints), then ``opts`` (KEY VALUE pairs)."""
    from .engine import stored_config

    return setup_cfg(None, list(opts), base=stored_config(ckpt))


def load_teacher(ckpt: dict, cfg, source):
    """The checkpoint's teacher ("state_dict") in the architecture of ``cfg``, without its
    classifier (features only), in eval mode."""
    from . import models

    if "state_dict" not in ckpt:
        raise CheckpointError(f"{source} holds no 'state_dict' (teacher weights)")
    try:
        model = models.create(cfg.MODEL.ARCH, 0, "none", cfg.MODEL.BACKBONE.LAST_STRIDE)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    weights = {k: v for k, v in ckpt["state_dict"].items()
               if not k.removeprefix("module.").startswith("classifier.")}
    copy_weights(model, weights, source)
    return model.eval()


class FeatureExtractor:
    """``FeatureExtractor(checkpoint)(inputs)`` -> (N, D) float32, one row per tracklet.

    inputs: a folder (see ``list_inputs``), or a list of tracklets, each a list of frame paths
    or PIL images (a single path or image counts as a one-frame tracklet). ``batch_size``:
    frames per forward pass."""

    def __init__(self, checkpoint, device: str = "cpu", batch_size: int = 32, normalize: bool = True,
                 opts=()):
        self.checkpoint = str(checkpoint)
        ckpt = load_checkpoint(checkpoint)
        self.cfg = checkpoint_config(ckpt, opts)
        self.device = torch.device(device)
        self.batch_size, self.normalize = int(batch_size), normalize
        self.model = load_teacher(ckpt, self.cfg, self.checkpoint).to(self.device)
        i = self.cfg.INPUT
        self.transform = build_test_transform(i.SIZE_TEST, i.PIXEL_MEAN, i.PIXEL_STD)
        self.names: list[str] | None = None

    def __call__(self, inputs) -> np.ndarray:
        from .evaluation import tracklet_features

        if isinstance(inputs, (str, Path)):
            tracklets, self.names = list_inputs(inputs)
        else:
            tracklets = [t if isinstance(t, (list, tuple)) else [t] for t in inputs]
            self.names = None
        if not tracklets or any(len(t) == 0 for t in tracklets):
            raise CorruptImageError("no frames to extract (an empty folder, or an empty tracklet)")
        items = [([_Image(f) if isinstance(f, Image.Image) else f for f in t], -1, -1) for t in tracklets]
        feats, _ = tracklet_features(self.model, items, self.transform, _Reader(), self.device,
                                     batch_frames=self.batch_size, progress=False)
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if self.normalize:
            feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        return feats
