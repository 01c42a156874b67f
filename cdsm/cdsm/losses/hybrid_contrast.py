"""CDSM's hybrid loss over a central proxy and K marginal proxies per cluster.

For a batch feature f_b with pseudo-label y_b, s0_bc = <f_b, P_c> (central proxies) and
sj_bc = <f_b, Q_cj>, j = 1..K (marginal proxies):

    z_bc = (1/K) sum_j sj_bc   if c == y_b   (the mean of the positive cluster's marginals)
    z_bc = max_j sj_bc         if c != y_b   (the hardest marginal of every negative cluster)

    L = center_weight * CE(s0 / tau, y) + marginal_weight * CE(z / tau, y)

CMhybrid_v4/v5 (the paper's method) use center_weight = 1 - w, marginal_weight = w with
w = --hard-weight (0.5). CMhybrid_v2 takes the *least* similar positive marginal
(``positive="min"``) and swaps the weights (w on the centre, 1 - w on the marginals).
"""
from __future__ import annotations

import torch

from .cluster_nce import cluster_nce


def hybrid_logits(marginal: torch.Tensor, targets: torch.Tensor, positive: str = "mean") -> torch.Tensor:
    """marginal: (K, B, C) similarities to the K marginal proxies; returns z (B, C)."""
    if positive == "mean":
        pos = marginal.mean(dim=0)
    elif positive == "min":
        pos = marginal.min(dim=0).values
    else:
        raise ValueError(f"positive must be 'mean' or 'min', got {positive!r}")
    neg = marginal.max(dim=0).values
    mask = torch.zeros_like(pos, dtype=torch.bool)
    mask[torch.arange(len(targets), device=targets.device), targets] = True
    return torch.where(mask, pos, neg)


def hybrid_contrast_loss(center: torch.Tensor, marginal: torch.Tensor, targets: torch.Tensor,
                         center_weight: float, marginal_weight: float, temp: float = 0.05,
                         smooth: float = 0.0, positive: str = "mean"):
    """Returns (loss, center term, marginal term), the terms unweighted."""
    l_center = cluster_nce(center, targets, temp, smooth)
    l_margin = cluster_nce(hybrid_logits(marginal, targets, positive), targets, temp, smooth)
    return center_weight * l_center + marginal_weight * l_margin, l_center, l_margin
