"""CMhybrid_v4: CDSM's diversity memory without the reliability criterion (see cm_hybrid_v5).

Layout, initialisation (from DBSCAN core samples), loss and update are those of CMhybrid_v5,
except that every diversity candidate counts as reliable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import hybrid_contrast_loss
from .base import ClusterMemory, chunk_means, cluster_means, member_features, pairwise_euclidean


class CMHybridV4(ClusterMemory):
    name = "CMhybrid_v4"
    uses_core_samples = True

    @staticmethod
    def rows(num_clusters: int, mem_instances: int) -> int:
        return (mem_instances + 1) * num_clusters

    @torch.no_grad()
    def initialise(self, features, labels, core_indices=None, rng=None) -> None:
        """Central proxy c: L2norm(mean of the cluster's core samples); marginal proxies
        c + j*C: L2norm(chunk means of the core samples, dataset order)."""
        if core_indices is None:
            raise ValueError(f"{self.name} is built from DBSCAN core samples: pass core_indices")
        f, y = member_features(features, labels, core_indices)
        C, K = self.num_clusters, self.mem_instances
        proxies = torch.cat([cluster_means(f, y, C), chunk_means(f, y, C, K)])
        self.features.copy_(F.normalize(proxies, dim=1))

    def loss(self, inputs, targets):
        """(1 - w) CE(central / tau) + w CE(z / tau): z = mean positive marginal, hardest
        negative marginal (losses/hybrid_contrast.py)."""
        parts = self.split(self.similarities(inputs), self.mem_instances + 1)
        w = self.hard_weight
        loss, l_c, l_m = hybrid_contrast_loss(parts[0], torch.stack(parts[1:]), targets, 1.0 - w, w,
                                              self.temp, self.smooth, positive="mean")
        return loss, {"loss": loss.detach(), "center": l_c.detach(), "marginal": l_m.detach()}

    def eligible(self, cluster: int, indexes: torch.Tensor) -> torch.Tensor:
        """Which of these samples (full-training-list indexes) may become diversity samples."""
        return torch.ones(len(indexes), dtype=torch.bool)

    @torch.no_grad()
    def select(self, group: torch.Tensor, eligible: torch.Tensor):
        """The central sample and the diversity samples of one cluster's batch features.

        D = pairwise Euclidean distances, mu_s = mean_t D[t, s] (self term included).
        central = argmin mu. Diversity: candidates by decreasing mu (most peripheral first);
        the first is taken unconditionally; a later candidate i is taken iff D[i, s] >= mu_s for
        every sample s already taken and it is eligible; stop at K. Returns (central index,
        boolean mask of the selected samples).
        """
        D = pairwise_euclidean(group)
        mu = D.mean(0)
        order = torch.argsort(mu, descending=True, stable=True).tolist()
        selected = torch.zeros(len(group), dtype=torch.bool, device=group.device)
        selected[order[0]] = True
        count = 1
        for i in order[1:]:
            if count >= self.mem_instances:
                break
            if bool((D[i][selected] >= mu[selected]).all()) and bool(eligible[i]):
                selected[i] = True
                count += 1
        return int(torch.argmin(mu)), selected

    @torch.no_grad()
    def update(self, inputs, targets, indexes) -> None:
        """Per cluster c in the batch, with its teacher features G (batch order):
        P_c <- m P_c + (1 - m) G[central]; Q_cj <- m Q_cj + (1 - m) G_(j) for the j-th selected
        sample in batch order, j = 1..n_sel (slots above n_sel untouched). No renormalisation
        (as the original v4/v5)."""
        m, C = self.momentum, self.num_clusters
        indexes = torch.as_tensor(indexes).cpu()
        for c in torch.unique(targets).tolist():
            in_c = targets == c
            group = inputs[in_c]
            # the selection is a few dozen scalar decisions: make them on the CPU (one copy per
            # cluster instead of a device synchronisation per candidate)
            eligible = self.eligible(c, indexes[in_c.cpu()])
            central, selected = self.select(group.detach().float().cpu(), eligible)
            selected = selected.to(group.device)
            rows = [c + C * j for j in range(1, int(selected.sum()) + 1)]
            self.features[rows] = m * self.features[rows] + (1.0 - m) * group[selected]
            self.features[c] = m * self.features[c] + (1.0 - m) * group[central]
