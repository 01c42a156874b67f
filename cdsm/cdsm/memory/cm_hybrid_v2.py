"""CMhybrid_v2: a central proxy and K instance slots per cluster (rows c, c + j*C, j = 1..K).

Initialisation: P_c = mean of cluster c's members; slot j = the feature of a member drawn at
random (with replacement); all L2-normalised.
Loss: w * CE(s0 / tau, y) + (1 - w) * CE(z / tau, y), where z takes the *least* similar
positive slot and the most similar slot of every negative cluster (w = --hard-weight).
Update per cluster in the batch: slots 1..n are *replaced* by the cluster's n teacher features
(batch order, n capped at K), and P_c <- m P_c + (1 - m) mean, renormalised.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..losses import hybrid_contrast_loss
from .base import ClusterMemory, cluster_means, member_features


class CMHybridV2(ClusterMemory):
    name = "CMhybrid_v2"

    @staticmethod
    def rows(num_clusters: int, mem_instances: int) -> int:
        return (mem_instances + 1) * num_clusters

    @torch.no_grad()
    def initialise(self, features, labels, core_indices=None, rng=None) -> None:
        rng = rng if rng is not None else np.random.default_rng(0)
        f, y = member_features(features, labels)
        C, K = self.num_clusters, self.mem_instances
        rows = [cluster_means(f, y, C)]
        members = [torch.nonzero(y == c).flatten().numpy() for c in range(C)]
        for _ in range(K):
            rows.append(f[[int(rng.choice(members[c])) for c in range(C)]])
        self.features.copy_(F.normalize(torch.cat(rows), dim=1))

    def loss(self, inputs, targets):
        parts = self.split(self.similarities(inputs), self.mem_instances + 1)
        w = self.hard_weight
        loss, l_c, l_m = hybrid_contrast_loss(parts[0], torch.stack(parts[1:]), targets, w, 1.0 - w,
                                              self.temp, self.smooth, positive="min")
        return loss, {"loss": loss.detach(), "center": l_c.detach(), "marginal": l_m.detach()}

    @torch.no_grad()
    def update(self, inputs, targets, indexes=None) -> None:
        m, C, K = self.momentum, self.num_clusters, self.mem_instances
        for c in torch.unique(targets).tolist():
            group = inputs[targets == c]
            n = min(len(group), K)
            self.features[[c + C * j for j in range(1, n + 1)]] = group[:n]
            self.features[c] = F.normalize(m * self.features[c] + (1.0 - m) * group.mean(0), dim=0)
