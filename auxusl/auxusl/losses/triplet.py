"""TRI_OPTION 1: batch-hard triplet loss in its soft-margin form, on raw (unnormalised) features.

    d = Euclidean distance matrix (sqrt(max(|x|^2 + |y|^2 - 2 x.y, 1e-12)))
    d_ap = distance to the hardest (farthest) positive, self included; d_an = to the nearest negative
    loss = mean softplus(d_ap - d_an)

The original writes it as SoftTripletLoss(margin=0.0): -log softmax(d_ap, d_an)[an], which is
the same quantity. ``batch_hard`` is shared with WATL and the soft triplet loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    xx = x.pow(2).sum(1, keepdim=True)
    yy = y.pow(2).sum(1, keepdim=True).t()
    dist = torch.addmm(xx + yy, x, y.t(), beta=1, alpha=-2)
    return dist.clamp(min=1e-12).sqrt()


def batch_hard(dist: torch.Tensor, labels: torch.Tensor):
    """(d_ap, d_an, ap index, an index): hardest positive and negative of every row, found as the
    original does (positives / negatives masked with -/+ 9999999)."""
    n = dist.shape[0]
    same = labels.expand(n, n).eq(labels.expand(n, n).t()).to(dist.dtype)
    ap_idx = torch.argmax(dist + (-9999999.0) * (1 - same), dim=1)
    an_idx = torch.argmin(dist + 9999999.0 * same, dim=1)
    rows = torch.arange(n, device=dist.device)
    return dist[rows, ap_idx], dist[rows, an_idx], ap_idx, an_idx


class SoftMarginTripletLoss(nn.Module):
    def forward(self, features, labels):
        d_ap, d_an, _, _ = batch_hard(euclidean_dist(features, features), labels)
        log_p = F.log_softmax(torch.stack((d_ap, d_an), dim=1), dim=1)
        return (-log_p[:, 1]).mean()
