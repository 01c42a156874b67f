"""Frame pipelines of the original (``unreidusl/data/transforms/build.py``), applied per frame.

train: Resize(SIZE_TRAIN, bicubic) -> [RandomHorizontalFlip(FLIP_PROB)] -> [Pad(PADDING, mode)
       -> RandomCrop(SIZE_TRAIN)] -> [RandomApply(ColorJitter, CJ.PROB)] -> ToTensor
       -> Normalize(PIXEL_MEAN, PIXEL_STD) -> [RandomErasing(REA.PROB, REA.MEAN)]
test:  Resize(SIZE_TEST, bicubic) -> ToTensor -> Normalize

Every frame of a clip draws its own augmentation, as in the original. Random erasing draws from
Python's ``random`` (as the original); the torchvision transforms from torch's generator.
"""
from __future__ import annotations

import math
import random

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode


class RandomErasing:
    """Random erasing (Zhong et al.) as the original writes it: with probability ``probability``,
    up to 100 tries of an area fraction in [sl, sh] and an aspect in [r1, 1/r1]; the first
    rectangle strictly inside the frame is filled with ``mean`` (in normalised space)."""

    def __init__(self, probability: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 mean=(0.4914, 0.4822, 0.4465)):
        self.probability, self.sl, self.sh, self.r1 = probability, sl, sh, r1
        self.mean = tuple(mean)

    def __call__(self, img):
        if random.uniform(0, 1) >= self.probability:
            return img
        _, H, W = img.shape
        for _ in range(100):
            target = random.uniform(self.sl, self.sh) * H * W
            aspect = random.uniform(self.r1, 1 / self.r1)
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < W and h < H:
                top = random.randint(0, H - h)
                left = random.randint(0, W - w)
                if img.shape[0] == 3:
                    for c in range(3):
                        img[c, top:top + h, left:left + w] = self.mean[c]
                else:
                    img[0, top:top + h, left:left + w] = self.mean[0]
                return img
        return img

    def __repr__(self) -> str:
        return f"RandomErasing(probability={self.probability}, mean={self.mean})"


def build_train_transform(size, mean, std, do_flip=True, flip_prob=0.5, do_pad=True, padding=10,
                          padding_mode="constant", cj=None, rea=None) -> T.Compose:
    """cj: None or (prob, brightness, contrast, saturation, hue); rea: None or (prob, mean)."""
    size = tuple(size)
    ops = [T.Resize(size, interpolation=InterpolationMode.BICUBIC)]
    if do_flip:
        ops.append(T.RandomHorizontalFlip(p=flip_prob))
    if do_pad:
        ops += [T.Pad(padding, padding_mode=padding_mode), T.RandomCrop(size)]
    if cj is not None:
        prob, b, c, s, h = cj
        ops.append(T.RandomApply([T.ColorJitter(b, c, s, h)], p=prob))
    ops += [T.ToTensor(), T.Normalize(mean=mean, std=std)]
    if rea is not None:
        ops.append(RandomErasing(probability=rea[0], mean=rea[1]))
    return T.Compose(ops)


def build_test_transform(size, mean, std) -> T.Compose:
    return T.Compose([T.Resize(tuple(size), interpolation=InterpolationMode.BICUBIC), T.ToTensor(),
                      T.Normalize(mean=mean, std=std)])
