"""Open-ReID's rectangle transforms (spec B3), on PIL images, drawing from python's ``random``."""
from __future__ import annotations

import math
import random

from PIL import Image
from torchvision.transforms import Compose, Normalize, RandomHorizontalFlip, ToTensor

__all__ = ["Compose", "Normalize", "RandomHorizontalFlip", "RandomSizedRectCrop", "RectScale",
           "ToTensor", "IMAGENET_MEAN", "IMAGENET_STD", "train_transform", "test_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BILINEAR = Image.Resampling.BILINEAR


class RectScale:
    """Bilinear resize to (height, width); an image already that size is returned as is."""

    def __init__(self, height: int, width: int, interpolation=BILINEAR):
        self.height, self.width, self.interpolation = height, width, interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if h == self.height and w == self.width:
            return img
        return img.resize((self.width, self.height), self.interpolation)


class RandomSizedRectCrop:
    """Up to 10 tries: area fraction U(0.64, 1), aspect h/w U(2, 3); a crop that fits is taken at
    a uniform position and resized to (height, width); otherwise a plain resize."""

    def __init__(self, height: int, width: int, interpolation=BILINEAR):
        self.height, self.width, self.interpolation = height, width, interpolation

    def __call__(self, img: Image.Image) -> Image.Image:
        for _ in range(10):
            area = img.size[0] * img.size[1]
            target_area = random.uniform(0.64, 1.0) * area
            aspect_ratio = random.uniform(2, 3)
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w <= img.size[0] and h <= img.size[1]:
                x1 = random.randint(0, img.size[0] - w)
                y1 = random.randint(0, img.size[1] - h)
                img = img.crop((x1, y1, x1 + w, y1 + h))
                return img.resize((self.width, self.height), self.interpolation)
        return RectScale(self.height, self.width, self.interpolation)(img)


def train_transform(height: int, width: int) -> Compose:
    return Compose([RandomSizedRectCrop(height, width), RandomHorizontalFlip(), ToTensor(),
                    Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])


def test_transform(height: int, width: int) -> Compose:
    return Compose([RectScale(height, width), ToTensor(), Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])
