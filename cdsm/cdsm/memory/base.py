"""What the cluster memories share: the proxy buffer, the detached similarities, the helpers
that build proxies from clustered features.

A memory holds ``features``, a (rows x D) buffer of proxies, rebuilt from the teacher's
features at the start of every epoch. Training calls, per batch:

    loss, parts = memory.loss(student_features, pseudo_labels)   # similarities to a detached copy
    loss.backward()
    memory.update(teacher_features, pseudo_labels, sample_indexes)  # no gradient, in place
    optimizer.step()

This is the original ``autograd.Function`` (forward = f M^T, backward = gradient g M and the
in-place update) in its plain form: the gradient uses the memory as it was in the forward pass,
and the update lands before the next forward, exactly as there.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ClusterMemory(nn.Module):
    """Base class. Subclasses set ``name``, ``rows_per_cluster``, ``uses_core_samples`` and
    implement ``initialise``, ``loss`` and ``update``."""

    name = ""
    uses_core_samples = False  # proxies from DBSCAN core samples only (v4, v5) or all members

    def __init__(self, num_features: int, num_clusters: int, temp: float = 0.05, momentum: float = 0.2,
                 smooth: float = 0.0, mem_instances: int = 1, hard_weight: float = 0.5):
        super().__init__()
        if num_clusters < 1:
            raise ValueError("a cluster memory needs at least one cluster")
        self.num_features = num_features
        self.num_clusters = num_clusters
        self.temp = temp
        self.momentum = momentum
        self.smooth = smooth
        self.mem_instances = mem_instances
        self.hard_weight = hard_weight
        self.register_buffer("features", torch.zeros(self.rows(num_clusters, mem_instances), num_features))

    @staticmethod
    def rows(num_clusters: int, mem_instances: int) -> int:
        return num_clusters

    def similarities(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs (B x D) against every proxy: B x rows, no gradient into the memory."""
        return inputs.mm(self.features.detach().t())

    def split(self, sims: torch.Tensor, parts: int) -> list[torch.Tensor]:
        """Columns of a similarity matrix as ``parts`` blocks of C (the row layout c + j*C)."""
        return list(torch.chunk(sims, parts, dim=1))

    def initialise(self, features: torch.Tensor, labels, core_indices=None, rng=None) -> None:
        raise NotImplementedError

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor):
        raise NotImplementedError

    def update(self, inputs: torch.Tensor, targets: torch.Tensor, indexes: torch.Tensor) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"name={self.name}, clusters={self.num_clusters}, rows={self.features.shape[0]}, "
                f"temp={self.temp}, momentum={self.momentum}")


def member_features(features: torch.Tensor, labels, core_indices=None):
    """(features, labels) restricted to clustered samples (and to core samples if given),
    in dataset order."""
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    keep = labels >= 0
    if core_indices is not None:
        core = torch.zeros_like(keep)
        core[torch.as_tensor(np.asarray(core_indices), dtype=torch.long)] = True
        keep &= core
    return features[keep], labels[keep]


def cluster_means(features: torch.Tensor, labels: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Mean feature of each cluster 0..C-1 (not normalised); every cluster must have a member."""
    sums = torch.zeros(num_clusters, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels.to(features.device), features)
    counts = torch.bincount(labels, minlength=num_clusters)
    if (counts == 0).any():
        raise ValueError(f"cluster {int(torch.nonzero(counts == 0)[0])} has no member to build a proxy from")
    return sums / counts.to(features.device, features.dtype).unsqueeze(1)


def chunk_means(features: torch.Tensor, labels: torch.Tensor, num_clusters: int, k: int) -> torch.Tensor:
    """K proxies per cluster, rows c + j*C (j = 0..K-1): the members of cluster c, in dataset
    order, cut by ``torch.chunk(members, K)`` (chunks of ceil(n/K), so there may be fewer than
    K); proxy j is the mean of chunk j, or the mean of the whole cluster where chunk j is missing."""
    out = torch.empty(k * num_clusters, features.shape[1], dtype=features.dtype, device=features.device)
    labels = labels.to(features.device)
    for c in range(num_clusters):
        members = features[labels == c]
        if len(members) == 0:
            raise ValueError(f"cluster {c} has no member to build a proxy from")
        chunks = torch.chunk(members, k, dim=0)
        whole = members.mean(0)
        for j in range(k):
            out[c + j * num_clusters] = chunks[j].mean(0) if j < len(chunks) else whole
    return out


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """CDSM's ``euclidean_dist(x, x)``: sqrt(clamp(|a|^2 + |b|^2 - 2 a.b, 1e-12)); the diagonal
    is about 1e-6 rather than 0, which the diversity selection inherits."""
    sq = x.pow(2).sum(1, keepdim=True)
    d = sq + sq.t() - 2.0 * x.mm(x.t())
    return d.clamp(min=1e-12).sqrt()


def normalise_rows_(features: torch.Tensor, rows) -> None:
    features[rows] = F.normalize(features[rows], dim=-1)
