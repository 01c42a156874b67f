"""Generalized-mean (GeM) pooling with a learnable exponent (Radenovic et al., TPAMI 2019).

    GeM(x) = (mean over H x W of clamp(x, eps)^p)^(1/p)

p is one learnable scalar shared by all channels, initialised to 3 (3C's
``GeneralizedMeanPoolingP``); it sits in the optimizer like any weight (with weight decay).
p = 1 is average pooling; p -> infinity tends to max pooling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeneralizedMeanPoolingP(nn.Module):
    def __init__(self, p: float = 3.0, eps: float = 1e-6, output_size=1):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.adaptive_avg_pool2d(x.clamp(min=self.eps).pow(self.p), self.output_size)
        return pooled.pow(1.0 / self.p)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()[0]):.4f}, eps={self.eps}, output_size={self.output_size}"


def build_pooling(pooling_type: str) -> nn.Module:
    if pooling_type == "gem":
        return GeneralizedMeanPoolingP(3.0)
    if pooling_type == "avg":
        return nn.AdaptiveAvgPool2d(1)
    raise ValueError(f"unknown pooling type {pooling_type!r}; valid: gem, avg")
