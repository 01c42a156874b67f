"""CMhybrid_v3: K proxies per cluster and no central one (rows c + j*C, j = 0..K-1).

Initialisation: the K chunk means of cluster c's members (``torch.chunk`` in dataset order),
L2-normalised. Loss: the sum over j of CE(s_j / tau, y).
Update per cluster in the batch: proxy j <- m proxy_j + (1 - m) g_j for the cluster's teacher
features g_0..g_{n-1} in batch order (n capped at K), renormalised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cluster_nce
from .base import ClusterMemory, chunk_means, member_features


class CMHybridV3(ClusterMemory):
    name = "CMhybrid_v3"

    @staticmethod
    def rows(num_clusters: int, mem_instances: int) -> int:
        return mem_instances * num_clusters

    @torch.no_grad()
    def initialise(self, features, labels, core_indices=None, rng=None) -> None:
        f, y = member_features(features, labels)
        self.features.copy_(F.normalize(chunk_means(f, y, self.num_clusters, self.mem_instances), dim=1))

    def loss(self, inputs, targets):
        parts = self.split(self.similarities(inputs), self.mem_instances)
        loss = sum(cluster_nce(p, targets, self.temp, self.smooth) for p in parts)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def update(self, inputs, targets, indexes=None) -> None:
        m, C, K = self.momentum, self.num_clusters, self.mem_instances
        for c in torch.unique(targets).tolist():
            group = inputs[targets == c]
            n = min(len(group), K)
            rows = [c + C * j for j in range(n)]
            self.features[rows] = F.normalize(m * self.features[rows] + (1.0 - m) * group[:n], dim=1)
