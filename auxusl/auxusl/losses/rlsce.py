"""ID_OPTION 3: restricted label-smoothing cross-entropy (RLSCE), the paper's ID loss.

    q_j = 1 - eps      for the pseudo-label y
    q_j = eps / K      for the K clusters nearest to y (``neighbour_map``)
    q_j = 0            otherwise;            loss = sum_j -q_j log softmax(z)_j, batch mean

``neighbour_map`` (C x C, 0/1) marks for every cluster the first K + 1 entries of its row of
the centroid Jaccard distance sorted ascending (itself, at distance 0, included); the target
is ``onehot(y) XOR neighbour_map[y]`` for the smoothing part, as the original computes it (so
y's own entry is removed from its neighbours). See ``auxusl.cluster.neighbours``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLabelSmoothK(nn.Module):
    def __init__(self, neighbour_map: torch.Tensor, K: int, epsilon: float = 0.1):
        super().__init__()
        self.neighbour_map = neighbour_map.to(torch.int32)
        self.K = K
        self.epsilon = epsilon

    def targets(self, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
        own = torch.zeros(len(targets), num_classes, dtype=torch.int32, device=targets.device)
        own.scatter_(1, targets.unsqueeze(1), 1)
        near = own ^ self.neighbour_map.to(targets.device).index_select(0, targets)
        return (1 - self.epsilon) * own + self.epsilon / self.K * near

    def forward(self, logits, targets):
        log_probs = F.log_softmax(logits, dim=1)
        q = self.targets(targets, logits.shape[1]).to(log_probs.dtype)
        return (-q * log_probs).mean(0).sum()
