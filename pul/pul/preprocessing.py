"""Image loading, the caffe-style ImageNet preprocessing and the PUL augmentation (spec A3).

1. Load, convert to RGB and resize to (H, W) = (224, 224) by stretching (aspect ratio not kept),
   nearest-neighbour resampling: Keras 2.0.4's ``load_img(target_size=...)`` called PIL's
   ``resize`` whose default was NEAREST at the time.
2. "caffe" preprocessing: RGB -> BGR, subtract the ImageNet mean (103.939, 116.779, 123.68);
   no scaling, no std division (``keras.applications.resnet50.preprocess_input``).
3. Training augmentation (Keras ``ImageDataGenerator(rotation_range=20, width_shift_range=0.2,
   height_shift_range=0.2, fill_mode='nearest')``): one affine warp per image, rotation
   theta ~ U(-20, 20) degrees composed with a translation (tx ~ U(-0.2, 0.2) * H rows,
   ty ~ U(-0.2, 0.2) * W columns), anchored at the centre (H/2 + 0.5, W/2 + 0.5), nearest-neighbour
   interpolation (order 0) and edge replication outside the image. No flip, zoom or shear.

The original stored mean-subtracted float32 arrays and warped those; with an order-0 warp and
edge replication, warping the uint8 image and subtracting the mean afterwards gives the same
numbers, so images are held as uint8 (4x less memory: Duke at 224x224 is 2.5 GB instead of 10).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import PULError

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


class ImageLoadError(PULError):
    """An image file could not be read (the message names it)."""


def image_array(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """A PIL image as uint8 (H, W, 3) RGB, stretched to size = (H, W) with nearest resampling."""
    im = im.convert("RGB")
    if im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.NEAREST)
    return np.asarray(im, dtype=np.uint8)


def load_image(path, size: tuple[int, int]) -> np.ndarray:
    """One image file as uint8 (H, W, 3) RGB, stretched to size = (H, W) with nearest resampling."""
    try:
        with Image.open(path) as im:
            return image_array(im, size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"cannot read image '{path}' ({exc}); the file is corrupted or not an image: "
                             "replace it with the original from the dataset archive") from exc


def load_images(paths, size: tuple[int, int], progress: bool = True, desc: str = "loading",
                workers: int = 4) -> np.ndarray:
    """All images as one uint8 array (N, H, W, 3), in the order of ``paths``."""
    from tqdm import tqdm

    paths = list(paths)
    out = np.empty((len(paths), size[0], size[1], 3), dtype=np.uint8)

    def work(i):
        out[i] = load_image(paths[i], size)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in tqdm(pool.map(work, range(len(paths))), total=len(paths), desc=desc, unit="img",
                      disable=not progress, leave=False):
            pass
    return out


def caffe_preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float32 BGR minus the ImageNet mean (Keras 'caffe' mode)."""
    x = np.asarray(images, dtype=np.float32)[..., ::-1]
    return x - CAFFE_MEAN_BGR


# ----------------------------------------------------------------------------- augmentation
def draw_affine_params(rng: np.random.Generator, n: int, height: int, width: int,
                       rotation_range: float = 20.0, height_shift_range: float = 0.2,
                       width_shift_range: float = 0.2) -> np.ndarray:
    """(n, 3) rows (theta in radians, tx in rows, ty in columns), drawn as ImageDataGenerator does:
    theta = pi/180 * U(-r, r), tx = U(-hs, hs) * H, ty = U(-ws, ws) * W, per image in this order."""
    params = np.zeros((n, 3), dtype=np.float64)
    for i in range(n):
        theta = math.pi / 180 * rng.uniform(-rotation_range, rotation_range) if rotation_range else 0.0
        tx = rng.uniform(-height_shift_range, height_shift_range) * height if height_shift_range else 0.0
        ty = rng.uniform(-width_shift_range, width_shift_range) * width if width_shift_range else 0.0
        params[i] = theta, tx, ty
    return params


def affine_matrix(theta: float, tx: float, ty: float, height: int, width: int) -> np.ndarray:
    """The 3x3 matrix mapping output (row, col, 1) to input coordinates: rotation then translation,
    conjugated by the move to the centre (H/2 + 0.5, W/2 + 0.5), as Keras 2.0.4 builds it."""
    c, s = math.cos(theta), math.sin(theta)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
    ox, oy = height / 2 + 0.5, width / 2 + 0.5
    to_centre = np.array([[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]])
    back = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]])
    return to_centre @ (rotation @ shift) @ back


def warp_nearest(images: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Applies one affine warp per image (N, H, W, C), order-0 interpolation, edge replication.

    Equal to scipy.ndimage.affine_transform(channel, M[:2, :2], M[:2, 2], order=0, mode='nearest')
    per channel (what Keras 2.0.4 ran), vectorised over the batch."""
    images = np.asarray(images)
    n, h, w = images.shape[:3]
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    out = np.empty_like(images)
    for i in range(n):
        m = affine_matrix(*params[i], h, w)
        src_r = m[0, 0] * rows + m[0, 1] * cols + m[0, 2]
        src_c = m[1, 0] * rows + m[1, 1] * cols + m[1, 2]
        # 'nearest' mode clamps the coordinate into the image, order 0 rounds half up
        r = np.floor(np.clip(src_r, 0, h - 1) + 0.5).astype(np.intp)
        c = np.floor(np.clip(src_c, 0, w - 1) + 0.5).astype(np.intp)
        out[i] = images[i][r, c]
    return out
