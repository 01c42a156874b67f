"""ClusterNCE: cross-entropy of temperature-scaled similarities to cluster proxies.

    L = CE(s / tau, y),   s_bc = <f_b, M_c>

With ``smooth > 0`` the target is label-smoothed with epsilon 0.1 (CDSM's
``CrossEntropyLabelSmooth(num_classes, 0.1)``, which is exactly torch's ``label_smoothing``; the
value of ``--smooth`` only switches it on, as in the original).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH_EPSILON = 0.1


def cluster_nce(similarities: torch.Tensor, targets: torch.Tensor, temp: float = 0.05,
                smooth: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(similarities / temp, targets,
                           label_smoothing=SMOOTH_EPSILON if smooth > 0 else 0.0)
