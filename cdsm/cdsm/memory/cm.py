"""CM: one proxy per cluster (ClusterContrast's cluster memory), CDSM's ``--memorybank CM``.

Initialisation: P_c = L2norm(mean of cluster c's members).
Loss: ClusterNCE, CE(f P^T / tau, y).
Update: for every sample of the batch in order, P_y <- m P_y + (1 - m) g, renormalised
(g = the teacher's feature of that sample).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cluster_nce
from .base import ClusterMemory, cluster_means, member_features


class CM(ClusterMemory):
    name = "CM"

    @torch.no_grad()
    def initialise(self, features, labels, core_indices=None, rng=None) -> None:
        f, y = member_features(features, labels, core_indices if self.uses_core_samples else None)
        self.features.copy_(F.normalize(cluster_means(f, y, self.num_clusters), dim=1))

    def loss(self, inputs, targets):
        loss = cluster_nce(self.similarities(inputs), targets, self.temp, self.smooth)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def update(self, inputs, targets, indexes=None) -> None:
        m = self.momentum
        for x, y in zip(inputs, targets.tolist()):
            self.features[y] = F.normalize(m * self.features[y] + (1.0 - m) * x, dim=0)
