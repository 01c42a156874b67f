"""IBN-Net "a" blocks (Pan et al., ECCV 2018) on torchvision's ResNet, for ``resnet_ibn50a/101a``.

In layers 1-3, the first BatchNorm of every bottleneck becomes IBN: InstanceNorm (affine) on
the first half of the channels, BatchNorm on the rest; layer4 keeps BatchNorm. The module names
(``bn1.IN``, ``bn1.BN``) match the released weights (XingangPan/IBN-Net v1.0), so their state
dicts load as they are.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50, resnet101


class IBN(nn.Module):
    def __init__(self, planes: int, ratio: float = 0.5):
        super().__init__()
        self.half = int(planes * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat((self.IN(a.contiguous()), self.BN(b.contiguous())), dim=1)


def resnet_ibn_a(depth: int) -> nn.Module:
    net = {50: resnet50, 101: resnet101}[depth](weights=None)
    for layer in (net.layer1, net.layer2, net.layer3):
        for block in layer:
            ibn = IBN(block.bn1.num_features)
            nn.init.ones_(ibn.IN.weight)
            nn.init.zeros_(ibn.IN.bias)
            block.bn1 = ibn
    return net
