"""Model factory (Open-ReID's ``models.create``): ``avg_pool`` is the original's only model,
End2End_AvgPooling on ResNet-50; ``resnet18``..``resnet152`` are the same model on other
backbones (``resnet18`` for the CPU smoke preset)."""
from __future__ import annotations

from .end2end import AvgPooling, End2End_AvgPooling
from .resnet import PretrainedWeightsMissing, ResNet, imagenet_weights_path

__factory = {
    "avg_pool": 50,
    "resnet18": 18,
    "resnet34": 34,
    "resnet50": 50,
    "resnet101": 101,
    "resnet152": 152,
}

__all__ = ["AvgPooling", "End2End_AvgPooling", "PretrainedWeightsMissing", "ResNet",
           "imagenet_weights_path", "names", "create"]


def names() -> list[str]:
    return sorted(__factory)


def create(name: str, **kwargs) -> End2End_AvgPooling:
    """End2End_AvgPooling with the named backbone; kwargs: pretrained, dropout, embedding_size,
    fixed_layer."""
    if name not in __factory:
        raise KeyError(f"unknown model {name!r}; valid: {', '.join(names())}")
    return End2End_AvgPooling(depth=__factory[name], **kwargs)
