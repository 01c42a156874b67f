"""CIE, camera information entropy (3C's ``--loss-with-camera``; spec 3.6).

Each cluster's cross-entropy term is weighted by how evenly the batch's samples of that cluster
are spread over cameras:

1. n_{c,q}: batch samples of cluster c seen by camera q;
2. p_{c,q} = n_{c,q} / sum_q n_{c,q};  H_c = -sum_q p_{c,q} log2 p_{c,q}  (0 log 0 = 0);
3. over the clusters present in the batch, w_c = |present| e^{H_c} / sum_present e^{H_c}
   (mean weight 1; the exponential of a base-2 entropy, as coded);
4. L = mean_b w_{y_b} CE_b. The weights carry no gradient.

The paper's figure is consistent with this: entropies 1.5 / 0.0 / 1.0 give weights 1.64 / 0.37 / 0.99.
"""
from __future__ import annotations

import torch

from .cluster_nce import cluster_nce

TINY = 1e-30


@torch.no_grad()
def camera_entropy_weights(targets: torch.Tensor, cameras: torch.Tensor):
    """(per-sample weights, present cluster ids, their weights, their entropies H_c)."""
    present, inverse = torch.unique(targets, sorted=True, return_inverse=True)
    cams = cameras.long()
    counts = torch.zeros(len(present), int(cams.max()) + 1, dtype=torch.float32, device=targets.device)
    counts.index_put_((inverse, cams), torch.ones_like(inverse, dtype=torch.float32), accumulate=True)
    prob = counts / counts.sum(1, keepdim=True).clamp(min=TINY)
    entropy = (-prob * torch.log2(prob.clamp(min=TINY))).sum(1)
    e = torch.exp(entropy)
    weights = len(present) * e / e.sum()
    return weights[inverse], present, weights, entropy


def camera_entropy_loss(logits: torch.Tensor, targets: torch.Tensor, cameras: torch.Tensor) -> torch.Tensor:
    w, *_ = camera_entropy_weights(targets, cameras)
    return (w * cluster_nce(logits, targets, reduction="none")).mean()
