"""AuxUSL's video model "resnet50bnn": a torchvision ResNet, a BN neck and a classifier.

    clip (B, T, 3, H, W) -> B*T frames -> conv1 -> bn1 -> maxpool (NO ReLU: the original
    comments it out) -> layer1..layer4 (last stride 2, the original's effective setting) -> GAP
    -> x (C)  -> BatchNorm1d neck (weight 1, bias 0, bias frozen) -> bn_x -> L2 -> bn_x_norm
    each of x, bn_x, bn_x_norm averaged over the T frames (f, bn_f, bn_f_norm)

train mode: returns (f, classifier(bn_f)); f (raw, unnormalised) feeds every triplet loss.
eval mode:  returns (bn_f_norm, f): bn_f_norm is the inference feature (not re-normalised after
            averaging), f the clustering feature.
The classifier is ``Linear(C, num_classes, bias=False)`` with weights N(0, 0.001^2); its first
#clusters rows are re-initialised from the cluster centroids every epoch.

Backbone weights: ``pretrained="imagenet"`` loads torchvision's IMAGENET1K_V1 (the original
``pretrained=True``) from the torch hub cache, downloading it when possible; a path loads a
state dict file; "none" keeps torchvision's random initialisation.
"""

from __future__ import annotations

import logging
import os
import urllib.error
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision.models as tvm
from torch import nn
from torch.nn import init

from ..errors import PretrainedWeightsError

log = logging.getLogger(__name__)

BACKBONES = {
    "resnet18bnn": (tvm.resnet18, tvm.ResNet18_Weights),
    "resnet34bnn": (tvm.resnet34, tvm.ResNet34_Weights),
    "resnet50bnn": (tvm.resnet50, tvm.ResNet50_Weights),
    "resnet101bnn": (tvm.resnet101, tvm.ResNet101_Weights),
}


def names() -> list[str]:
    return sorted(BACKBONES)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_state_dict(path) -> dict:
    """A backbone state dict from a file (a plain state dict, or one under 'state_dict'/'model');
    a 'module.' prefix (DataParallel) is removed."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file {path} does not exist")
    from ..utils.runfiles import safe_torch_load

    obj = safe_torch_load(path)  # weights_only: a file that would run code is refused unread
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise PretrainedWeightsError(f"{path} does not hold a state dict of tensors")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in obj.items()}


def imagenet_state_dict(arch: str) -> dict:
    """IMAGENET1K_V1 weights of the backbone from the torch hub cache, downloading when possible."""
    weights = BACKBONES[arch][1].IMAGENET1K_V1
    filename = os.path.basename(urlparse(weights.url).path)
    cached = hub_checkpoint_dir() / filename
    if cached.is_file():
        return read_state_dict(cached)
    try:
        return weights.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise PretrainedWeightsError(
            f"ImageNet weights for {arch} ({weights}) are not in the cache and could not be downloaded "
            f"({exc}). Put {filename} (from {weights.url}) at {cached} (set TORCH_HOME for another cache "
            "folder), or set MODEL.BACKBONE.PRETRAIN_PATH to a state dict file, or MODEL.BACKBONE.PRETRAIN "
            "False for random initialisation"
        ) from None


def load_backbone(net: nn.Module, state_dict: dict, source: str) -> None:
    """Loads a torchvision-layout state dict; the ImageNet fc is ignored, anything else missing,
    left over or of another shape is an error naming the keys."""
    own = net.state_dict()
    body = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    missing = [k for k in own if not k.startswith("fc.") and k not in body]
    unexpected = [k for k in body if k not in own]
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in body.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{name}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
            if keys
        ]
        raise PretrainedWeightsError(
            f"the weights from {source} do not fit this backbone ({'; '.join(parts)})"
        )
    net.load_state_dict({**{k: v for k, v in own.items() if k.startswith("fc.")}, **body})


class VideoResNet(nn.Module):
    """``arch``: one of ``names()``; ``num_classes``: rows of the classifier (the original: the
    number of training tracklets, an upper bound of the number of clusters)."""

    def __init__(
        self,
        arch: str = "resnet50bnn",
        num_classes: int = 0,
        pretrained: str = "imagenet",
        last_stride: int = 2,
    ):
        super().__init__()
        if arch not in BACKBONES:
            raise ValueError(f"unknown MODEL.ARCH {arch!r}; valid: {', '.join(names())}")
        net = BACKBONES[arch][0](weights=None)
        source = str(pretrained)
        if source.lower() != "none":
            sd = imagenet_state_dict(arch) if source == "imagenet" else read_state_dict(source)
            load_backbone(net, sd, "ImageNet (IMAGENET1K_V1)" if source == "imagenet" else source)
            log.info(
                f"=> {arch}: backbone weights from "
                f"{'ImageNet IMAGENET1K_V1' if source == 'imagenet' else source}"
            )
        else:
            log.info(f"=> {arch}: random initialisation")
        if last_stride not in (1, 2):
            raise ValueError(f"MODEL.BACKBONE.LAST_STRIDE must be 1 or 2, got {last_stride}")
        if last_stride == 1:
            block = net.layer4[0]
            (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (1, 1)
            block.downsample[0].stride = (1, 1)
        self.arch = arch
        # the stem without its ReLU, as the original
        self.base = nn.Sequential(
            net.conv1, net.bn1, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        self.num_features = net.fc.in_features
        self.num_classes = num_classes
        self.feat_bn = nn.BatchNorm1d(self.num_features)
        self.feat_bn.bias.requires_grad_(False)
        init.constant_(self.feat_bn.weight, 1)
        init.constant_(self.feat_bn.bias, 0)
        if num_classes > 0:
            self.classifier = nn.Linear(self.num_features, num_classes, bias=False)
            init.normal_(self.classifier.weight, std=0.001)

    def frame_features(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame (raw GAP feature x, BN feature bn_x) of an (N, 3, H, W) batch."""
        x = self.base(frames)
        x = F.avg_pool2d(x, x.shape[2:]).flatten(1)
        return x, self.feat_bn(x)

    def forward(self, clips: torch.Tensor):
        b, t = clips.shape[:2]
        x, bn_x = self.frame_features(clips.reshape(b * t, *clips.shape[2:]))
        f = x.view(b, t, -1).mean(1)
        if not self.training:
            return F.normalize(bn_x).view(b, t, -1).mean(1), f
        return f, self.classifier(bn_x.view(b, t, -1).mean(1))


def create(arch: str, num_classes: int, pretrained: str = "imagenet", last_stride: int = 2) -> VideoResNet:
    return VideoResNet(arch, num_classes, pretrained, last_stride)
