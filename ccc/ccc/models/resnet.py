"""The re-ID network of 3C (``models/resnet.py``, ``models/resnet_ibn.py``): ResNet body with
last stride 1, GeM (or average) pooling, a BatchNorm neck.

    image -> conv1 ... layer4 (last stride 1) -> pooling -> [Linear] -> BN1d
          -> L2-normalised feature (train mode: ``norm=True`` as 3C builds it; eval mode: always)

The neck's BN has weight 1, bias 0 and a frozen bias; there is no classifier and no dropout
(``--features 0``, dropout 0 in 3C). Backbone weights (``pretrained``):

* ``"imagenet"``: torchvision's ImageNet weights through its weights API and standard cache
  (``$TORCH_HOME/hub/checkpoints``): ``IMAGENET1K_V1`` or ``IMAGENET1K_V2`` (``version``, 3C's
  ``--resnet-pretrained``); for the IBN-a variants the IBN-Net v1.0 release file that 3C
  downloads (XingangPan/IBN-Net), looked up in the same cache;
* a path: a state dict (or a checkpoint holding one) in torchvision's layout;
* ``"none"``: random initialisation (3C's ``reset_params``).

resnet18/34 are [added] for the CPU smoke preset (3C offers resnet50/101 and their IBN-a
versions); their BasicBlocks get last stride 1 the same way (stride of layer4's first block
and of its shortcut set to 1).
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
from ..utils.runfiles import safe_torch_load
from .gem import build_pooling
from .ibn import resnet_ibn_a

log = logging.getLogger(__name__)

TORCHVISION = {
    "resnet18": (tvm.resnet18, tvm.ResNet18_Weights, 18),
    "resnet34": (tvm.resnet34, tvm.ResNet34_Weights, 34),
    "resnet50": (tvm.resnet50, tvm.ResNet50_Weights, 50),
    "resnet101": (tvm.resnet101, tvm.ResNet101_Weights, 101),
}
# IBN-Net v1.0 release files (what 3C's resnet_ibn_a.py downloads through torch.hub's cache)
IBN = {
    "resnet_ibn50a": (50, "resnet50_ibn_a-d9d0bb7b.pth"),
    "resnet_ibn101a": (101, "resnet101_ibn_a-59ea0ac6.pth"),
}
IBN_URL = "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"
PAPER_ARCHS = ("resnet50", "resnet101", "resnet_ibn50a", "resnet_ibn101a")


def arch_names() -> list[str]:
    return sorted(TORCHVISION) + sorted(IBN)


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def read_state_dict(path) -> dict:
    """A backbone state dict from a file: a plain state dict, or a checkpoint holding one under
    'state_dict'/'model'; a 'module.' prefix (DataParallel) is removed."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file {path} does not exist")
    obj = safe_torch_load(path)   # weights_only=True: a file that would run code is refused
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise PretrainedWeightsError(f"{path} does not hold a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def imagenet_weights(arch: str, version: str = "V1"):
    """The torchvision weights enum entry of ``arch`` for 3C's ``--resnet-pretrained V1|V2``."""
    enum = TORCHVISION[arch][1]
    name = f"IMAGENET1K_{version}"
    if not hasattr(enum, name):
        have = ", ".join(w.name.replace("IMAGENET1K_", "") for w in enum)
        raise PretrainedWeightsError(f"torchvision has no {name} weights for {arch} (available: {have}); "
                                     "choose --resnet-pretrained accordingly")
    return getattr(enum, name)


def imagenet_state_dict(arch: str, version: str = "V1") -> dict:
    """ImageNet weights for ``arch`` from the standard cache, downloading them if possible."""
    if arch in IBN:
        _, release = IBN[arch]
        cached = hub_checkpoint_dir() / release
        if cached.is_file():
            return read_state_dict(cached)
        raise PretrainedWeightsError(
            f"IBN-Net weights for {arch} not available: put {release} (from {IBN_URL}{release}) at "
            f"{cached} (set TORCH_HOME to use another cache folder), or pass --pretrained PATH "
            "(--pretrained none trains from random initialisation)")
    weights = imagenet_weights(arch, version)
    filename = os.path.basename(urlparse(weights.url).path)
    cached = hub_checkpoint_dir() / filename
    if cached.is_file():
        return read_state_dict(cached)
    try:
        return weights.get_state_dict(progress=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        raise PretrainedWeightsError(
            f"ImageNet weights for {arch} ({weights}) are not in the cache and could not be "
            f"downloaded ({exc}). Put {filename} (from {weights.url}) at {cached} (set TORCH_HOME "
            "to use another cache folder), or pass --pretrained PATH, or --pretrained none for "
            "random initialisation") from None


def load_backbone_weights(net: nn.Module, state_dict: dict, source: str) -> None:
    """Loads a torchvision-layout state dict into the body; the ImageNet classifier (fc) is
    ignored, anything else missing or left over is an error naming the keys."""
    own = net.state_dict()
    body = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    missing = [k for k in own if not k.startswith("fc.") and k not in body]
    unexpected = [k for k in body if k not in own]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in body.items()
             if k in own and v.shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
            if keys:
                parts.append(f"{name}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise PretrainedWeightsError(f"the weights from {source} do not fit this backbone "
                                     f"({'; '.join(parts)})")
    net.load_state_dict({**{k: v for k, v in own.items() if k.startswith("fc.")}, **body})


def set_last_stride_one(net: nn.Module) -> None:
    """layer4 keeps the spatial size (a 256 x 128 input gives a 16 x 8 map)."""
    block = net.layer4[0]
    if hasattr(block, "conv3"):       # Bottleneck: the stride sits on conv2 (torchvision v1.5)
        block.conv2.stride = (1, 1)
    else:                             # BasicBlock: on conv1
        block.conv1.stride = (1, 1)
    block.downsample[0].stride = (1, 1)


class ReIDResNet(nn.Module):
    """3C's ResNet re-ID model (``models.create(arch, pretrained, norm=True, pooling_type)``).

    pretrained: "imagenet", "none", or a path to a state dict; version: "V1" or "V2".
    num_features > 0 adds an embedding Linear before the BN neck (3C: 0).
    """

    def __init__(self, arch: str = "resnet50", pretrained: str | os.PathLike = "imagenet",
                 version: str = "V1",
                 pooling_type: str = "gem", num_features: int = 0, dropout: float = 0.0, norm: bool = True):
        super().__init__()
        if arch in TORCHVISION:
            net = TORCHVISION[arch][0](weights=None)
        elif arch in IBN:
            net = resnet_ibn_a(IBN[arch][0])
        else:
            raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(arch_names())}")
        self.arch = arch
        random_init = str(pretrained).lower() == "none"
        if not random_init:
            if str(pretrained) == "imagenet":
                source = "IBN-Net v1.0 (ImageNet)" if arch in IBN else f"ImageNet {version}"
                sd = imagenet_state_dict(arch, version)
            else:
                source, sd = str(pretrained), read_state_dict(pretrained)
            load_backbone_weights(net, sd, source)
            log.info(f"=> {arch}: backbone weights from {source}")
        set_last_stride_one(net)
        self.base = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                  net.layer1, net.layer2, net.layer3, net.layer4)
        self.gap = build_pooling(pooling_type)
        out_planes = net.fc.in_features
        self.norm = norm
        self.dropout = dropout
        self.has_embedding = num_features > 0
        if self.has_embedding:
            self.feat = nn.Linear(out_planes, num_features)
            init.kaiming_normal_(self.feat.weight, mode="fan_out")
            init.constant_(self.feat.bias, 0)
            self.num_features = num_features
        else:
            self.num_features = out_planes
        self.feat_bn = nn.BatchNorm1d(self.num_features)
        self.feat_bn.bias.requires_grad_(False)
        init.constant_(self.feat_bn.weight, 1)
        init.constant_(self.feat_bn.bias, 0)
        self.drop = nn.Dropout(dropout) if dropout > 0 else None
        if random_init:
            self.reset_params()
            log.info(f"=> {arch}: random initialisation (--pretrained none)")

    def reset_params(self) -> None:
        """3C's initialisation without pretrained weights."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    init.constant_(m.bias, 0)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                init.constant_(m.weight, 1)
                init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gap(self.base(x)).flatten(1)
        bn_x = self.feat_bn(self.feat(x) if self.has_embedding else x)
        if not self.training:
            return F.normalize(bn_x)
        if self.norm:
            bn_x = F.normalize(bn_x)
        elif self.has_embedding:
            bn_x = F.relu(bn_x)
        if self.drop is not None:
            bn_x = self.drop(bn_x)
        return bn_x
