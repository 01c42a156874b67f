"""Image pipelines of 3C (``utils/dataloader.py``): persons 256 x 128, VeRi 224 x 224 at paper scale.

train: Resize (bilinear) -> RandomHorizontalFlip(0.5) -> Pad(10) -> RandomCrop(H, W) -> ToTensor
       -> Normalize(ImageNet) -> RandomErasing(p 0.5, scale (0.02, 0.4), ratio (0.3, 1/0.3),
          value = the ImageNet means, in normalised space)   [torchvision's RandomErasing]
test:  Resize (bilinear) -> ToTensor -> Normalize(ImageNet)

Every random draw comes from torch's generator, so one seed (and a restored RNG state on
resume) fixes the augmentation.
"""
from __future__ import annotations

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_train_transform(height: int, width: int, pad: int = 10, erasing: float = 0.5) -> T.Compose:
    return T.Compose([
        T.Resize([height, width]),
        T.RandomHorizontalFlip(p=0.5),
        T.Pad(pad),
        T.RandomCrop((height, width)),
        T.ToTensor(),
        T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        T.RandomErasing(p=erasing, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=list(IMAGENET_MEAN)),
    ])


def build_test_transform(height: int, width: int) -> T.Compose:
    return T.Compose([
        T.Resize([height, width]),
        T.ToTensor(),
        T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
