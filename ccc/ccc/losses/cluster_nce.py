"""ClusterNCE: cross-entropy of temperature-scaled similarities to the cluster proxies.

    L = mean_b CE(f_b M^T / tau, y_b),   tau = 0.05 (``--cm-temperature``)

3C feeds ``F.cross_entropy`` one-hot float targets when ``--loss-with-camera`` is on; integer
targets give the same value (spec 3.10.8), so they are used throughout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cluster_nce(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(logits, targets, reduction=reduction)
