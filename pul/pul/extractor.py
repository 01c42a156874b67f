"""Features of a trained PUL model for any images: ``FeatureExtractor`` (the public API) and
``list_inputs`` (the images of a folder, in a fixed order).

    from pul import FeatureExtractor
    fx = FeatureExtractor("logs/duke-market/checkpoints/25.keras", device="cpu", batch_size=32)
    feats = fx("some/folder")                      # (N, D) float32, rows L2-normalised
    feats = fx(["a.jpg", "b.jpg"])                 # paths or PIL images

The feature is what PUL clusters and ranks: the Keras model's ``avg_pool`` output in inference mode
(2048-d for ResNet-50), after PUL's preprocessing: RGB, stretched to the model's input size with
nearest resampling (the original's Keras 2.0.4 ``load_img``), caffe mode (BGR minus the ImageNet
mean). The input size is the model's own; the checkpoint's stored configuration (``config``, see
pul.checkpoint.read_config) is exposed for reference. Rows are L2-normalised, so dot products are
the cosine similarities PUL's evaluation ranks by. The model is loaded in Keras' safe mode.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import PULError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class InputError(PULError):
    """The images to extract features from cannot be used (the message says which and why)."""


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


def tf_device(device: str) -> str:
    """'cpu' -> '/CPU:0'; 'gpu', 'cuda', 'cuda:N', 'gpu:N' -> '/GPU:N'."""
    d = str(device).lower()
    if d == "cpu":
        return "/CPU:0"
    kind, _, index = d.partition(":")
    if kind in ("gpu", "cuda") and (index == "" or index.isdigit()):
        return f"/GPU:{index or 0}"
    raise InputError(f"unknown device {device!r}; use cpu, gpu, cuda or cuda:N")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows divided by their Euclidean norm (a zero row stays zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


class FeatureExtractor:
    """L2-normalised ``avg_pool`` features of a PUL checkpoint (``.keras``) for images."""

    def __init__(self, checkpoint, device: str = "cpu", batch_size: int = 32):
        from .checkpoint import read_config
        from .model import feature_model, load_model
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        self.checkpoint = Path(checkpoint)
        self.device = tf_device(device)
        self.batch_size = int(batch_size)
        import tensorflow as tf
        if self.device.startswith("/GPU") and not tf.config.list_logical_devices("GPU"):
            raise InputError(f"device {device!r}: TensorFlow sees no GPU here; use --device cpu")
        with tf.device(self.device):
            self.model = load_model(self.checkpoint, compile=False)
            self.feature_model = feature_model(self.model)
        self.config = read_config(self.checkpoint)
        self.size = tuple(int(s) for s in self.model.input_shape[1:3])   # (H, W)
        self.dim = int(np.prod(self.feature_model.output_shape[1:]))

    def _arrays(self, items) -> np.ndarray:
        from PIL import Image

        from .preprocessing import image_array, load_image
        out = np.empty((len(items), *self.size, 3), dtype=np.uint8)
        for i, item in enumerate(items):
            if isinstance(item, Image.Image):
                out[i] = image_array(item, self.size)
            elif isinstance(item, (str, os.PathLike)):
                out[i] = load_image(item, self.size)
            else:
                raise InputError(f"input {i} is a {type(item).__name__}; give image paths or PIL images")
        return out

    def __call__(self, inputs, chunk: int = 512) -> np.ndarray:
        """inputs: a folder (str/Path), or a list of image paths / PIL images -> (N, D) float32."""
        import tensorflow as tf

        from .evaluation import extract_features
        if isinstance(inputs, (str, os.PathLike)):
            items, _ = list_inputs(inputs)
            if not items:
                raise InputError(f"no image (.jpg/.jpeg/.png/.bmp) under {inputs}")
        else:
            items = list(inputs)
            if not items:
                raise InputError("no input image given")
        parts = []
        with tf.device(self.device):
            for s in range(0, len(items), chunk):
                parts.append(extract_features(self.feature_model, self._arrays(items[s:s + chunk]),
                                              self.batch_size, progress=False))
        return l2_normalise(np.concatenate(parts))
