"""ResNet backbones up to pool5, with the real ImageNet-weight loading code (spec B4, B14).

``pretrained``: ``"imagenet"`` = torchvision's ``IMAGENET1K_V1`` weights (the 2019 weights; the
default V2 weights are different) through torch's standard cache
``$TORCH_HOME/hub/checkpoints/<file>``; a path = a torchvision-style state_dict file; ``"none"`` =
random initialisation (the original's ``reset_params``: Kaiming-normal fan-out convolutions,
BN 1/0).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.nn import functional as F
from torch.nn import init

from ..utils.serialization import load_checkpoint

DEPTHS = {
    18: (torchvision.models.resnet18, torchvision.models.ResNet18_Weights),
    34: (torchvision.models.resnet34, torchvision.models.ResNet34_Weights),
    50: (torchvision.models.resnet50, torchvision.models.ResNet50_Weights),
    101: (torchvision.models.resnet101, torchvision.models.ResNet101_Weights),
    152: (torchvision.models.resnet152, torchvision.models.ResNet152_Weights),
}


class PretrainedWeightsMissing(FileNotFoundError):
    """ImageNet weights are not in the cache and cannot be downloaded; the message says where
    to put which file."""


def imagenet_weights_path(depth: int) -> tuple[Path, str]:
    """Where torch's cache keeps the IMAGENET1K_V1 file of this depth, and its URL."""
    url = DEPTHS[depth][1].IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def load_imagenet_state(depth: int) -> dict:
    path, url = imagenet_weights_path(depth)
    if not path.is_file():
        try:  # online: torch downloads into the cache; offline this fails within a second
            torch.hub.load_state_dict_from_url(url, progress=False, map_location="cpu")
        except Exception as exc:  # URLError, socket errors, HTTP errors
            raise PretrainedWeightsMissing(
                f"ImageNet weights for ResNet-{depth} (torchvision IMAGENET1K_V1) are not available: "
                f"{path} does not exist and the download from {url} failed ({exc}). Download that "
                f"file elsewhere and put it at {path} (set TORCH_HOME to change the cache folder), "
                f"or pass --pretrained PATH to a state_dict file, or --pretrained none for random "
                f"initialisation.") from exc
    return load_checkpoint(path)


def load_state_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsMissing(f"--pretrained {path}: no such file (expected a torchvision "
                                       "ResNet state_dict saved with torch.save, or a BUC checkpoint)")
    state = load_checkpoint(path)   # weights_only=True: a file that would run code is refused
    if isinstance(state, dict) and isinstance(state.get("model"), dict):   # a BUC checkpoint: its backbone
        state = {k.removeprefix("CNN.base."): v for k, v in state["model"].items()
                 if k.startswith("CNN.base.")}
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def reset_params(module: nn.Module) -> None:
    """The original's random initialisation (Open-ReID ResNet.reset_params)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                init.constant_(m.bias, 0)
        elif isinstance(m, nn.BatchNorm2d):
            init.constant_(m.weight, 1)
            init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                init.constant_(m.bias, 0)


class ResNet(nn.Module):
    """torchvision ResNet run through layer4 (last stride 2), global average pool: pool5.

    ``fixed_layer`` freezes conv1, bn1, layer1 and layer2 (``requires_grad=False``), as the
    original does for video datasets.
    """

    def __init__(self, depth: int = 50, pretrained: str | os.PathLike = "imagenet",
                 fixed_layer: bool = False):
        super().__init__()
        if depth not in DEPTHS:
            raise KeyError(f"unsupported ResNet depth {depth}; valid: {sorted(DEPTHS)}")
        self.depth = depth
        self.base = DEPTHS[depth][0](weights=None)
        if str(pretrained).lower() == "none":
            reset_params(self.base)
        else:
            state = load_imagenet_state(depth) if str(pretrained).lower() == "imagenet" \
                else load_state_file(pretrained)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            try:
                missing, unexpected = self.base.load_state_dict(state, strict=False)
            except RuntimeError as exc:  # shape mismatches
                raise ValueError(f"pretrained weights do not fit ResNet-{depth}: "
                                 f"{str(exc).splitlines()[1].strip()} ...") from None
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(f"pretrained weights do not fit ResNet-{depth}: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
        self.out_features = self.base.fc.in_features
        del self.base.fc  # never used: BUC takes pool5
        self.fixed_layer = fixed_layer
        if fixed_layer:
            for name in ("conv1", "bn1", "layer1", "layer2"):
                for p in getattr(self.base, name).parameters():
                    p.requires_grad = False

    def forward(self, x):
        b = self.base
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        x = F.avg_pool2d(x, x.size()[2:])
        return x.view(x.size(0), -1)
