"""Models: 3C's ResNet re-ID network (GeM pooling, BN neck), with IBN-a variants."""
from __future__ import annotations

from .gem import GeneralizedMeanPoolingP, build_pooling
from .resnet import PAPER_ARCHS, ReIDResNet, arch_names


def names() -> list[str]:
    return arch_names()


def create(arch: str, **kwargs) -> ReIDResNet:
    """``create("resnet50", pretrained="imagenet", version="V1", pooling_type="gem")``."""
    return ReIDResNet(arch, **kwargs)


__all__ = ["GeneralizedMeanPoolingP", "build_pooling", "ReIDResNet", "PAPER_ARCHS", "create", "names"]
