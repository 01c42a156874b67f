"""Models: the ResNet re-ID network (GeM pooling, BN neck) and the mean teacher."""
from __future__ import annotations

from .gem import GeneralizedMeanPoolingP, build_pooling
from .mean_teacher import create_teacher, ema_decay, update_teacher
from .resnet import ReIDResNet, arch_names


def names() -> list[str]:
    return arch_names()


def create(arch: str, **kwargs) -> ReIDResNet:
    """``create("resnet50", pretrained="imagenet", pooling_type="gem", num_features=0, dropout=0)``."""
    return ReIDResNet(arch, **kwargs)


__all__ = ["GeneralizedMeanPoolingP", "build_pooling", "ReIDResNet", "create", "names",
           "create_teacher", "ema_decay", "update_teacher"]
