"""CMhybrid (HHCL's hybrid memory): two proxies per cluster, rows c (hard) and c + C (mean).

Initialisation: both = L2norm(mean of cluster c's members).
Loss, as the original writes it (the bracket is the original's):
    L = w * (CE(s_hard / tau, y) + (1 - w) * CE(s_mean / tau, y)),   w = --hard-weight
Update per cluster in the batch: the hard proxy with the least similar teacher feature, the mean
proxy with the batch mean of the cluster's teacher features; both momentum m and renormalised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import cluster_nce
from .base import ClusterMemory, cluster_means, member_features


class CMHybrid(ClusterMemory):
    name = "CMhybrid"

    @staticmethod
    def rows(num_clusters: int, mem_instances: int) -> int:
        return 2 * num_clusters

    @torch.no_grad()
    def initialise(self, features, labels, core_indices=None, rng=None) -> None:
        f, y = member_features(features, labels)
        self.features.copy_(F.normalize(cluster_means(f, y, self.num_clusters).repeat(2, 1), dim=1))

    def loss(self, inputs, targets):
        hard, mean = self.split(self.similarities(inputs), 2)
        l_hard = cluster_nce(hard, targets, self.temp, self.smooth)
        l_mean = cluster_nce(mean, targets, self.temp, self.smooth)
        w = self.hard_weight
        loss = w * (l_hard + (1.0 - w) * l_mean)
        return loss, {"loss": loss.detach(), "hard": l_hard.detach(), "mean": l_mean.detach()}

    @torch.no_grad()
    def update(self, inputs, targets, indexes=None) -> None:
        m, C = self.momentum, self.num_clusters
        for c in torch.unique(targets).tolist():
            group = inputs[targets == c]
            hardest = group[torch.argmin(group.mv(self.features[c]))]
            self.features[c] = F.normalize(m * self.features[c] + (1.0 - m) * hardest, dim=0)
            self.features[c + C] = F.normalize(m * self.features[c + C] + (1.0 - m) * group.mean(0), dim=0)
