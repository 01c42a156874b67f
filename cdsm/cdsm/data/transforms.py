"""Image pipelines of CDSM's train.py (person images, H x W = 256 x 128 at paper scale).

train: Resize (bicubic) -> RandomHorizontalFlip(0.5) -> Pad(10) -> RandomCrop(H, W) -> ToTensor
       -> Normalize(ImageNet) -> RandomErasing(0.5)
test:  Resize (bicubic) -> ToTensor -> Normalize(ImageNet)

Every random draw comes from torch's generator, so one seed (and a restored RNG state on
resume) fixes the augmentation.
"""
from __future__ import annotations

import math

import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}


class RandomErasing:
    """Random erasing (Zhong et al., AAAI 2020) as CDSM/SpCL implement it.

    With probability ``probability``, up to 100 tries draw an area fraction uniform in
    [sl, sh] and an aspect ratio uniform in [r1, 1/r1]; the first rectangle that fits strictly
    inside the image is filled with the per-channel constants ``mean`` (in normalised space,
    as the original does). Works on a C x H x W tensor, in place.
    """

    def __init__(self, probability: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 mean=IMAGENET_MEAN):
        self.probability, self.sl, self.sh, self.r1 = probability, sl, sh, r1
        self.mean = tuple(mean)

    @staticmethod
    def _uniform(a: float, b: float) -> float:
        return a + (b - a) * torch.rand(()).item()

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if torch.rand(()).item() >= self.probability:
            return img
        _, H, W = img.shape
        for _ in range(100):
            target = self._uniform(self.sl, self.sh) * H * W
            aspect = self._uniform(self.r1, 1.0 / self.r1)
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < W and h < H:
                top = int(torch.randint(0, H - h + 1, ()).item())
                left = int(torch.randint(0, W - w + 1, ()).item())
                for c in range(img.shape[0]):
                    img[c, top:top + h, left:left + w] = self.mean[c % len(self.mean)]
                return img
        return img

    def __repr__(self) -> str:
        return (f"RandomErasing(probability={self.probability}, sl={self.sl}, sh={self.sh}, "
                f"r1={self.r1}, mean={self.mean})")


def build_train_transform(height: int, width: int, pad: int = 10, erasing: float = 0.5,
                          interpolation: str = "bicubic") -> T.Compose:
    return T.Compose([
        T.Resize((height, width), interpolation=INTERPOLATIONS[interpolation]),
        T.RandomHorizontalFlip(p=0.5),
        T.Pad(pad),
        T.RandomCrop((height, width)),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        RandomErasing(probability=erasing, mean=IMAGENET_MEAN),
    ])


def build_test_transform(height: int, width: int, interpolation: str = "bicubic") -> T.Compose:
    return T.Compose([
        T.Resize((height, width), interpolation=INTERPOLATIONS[interpolation]),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
