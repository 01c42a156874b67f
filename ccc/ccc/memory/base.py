"""The cluster memory of 3C (``models/cm.py``, from ClusterContrast): one proxy per cluster.

The original is an ``autograd.Function``: the forward computes f M^T, the backward returns the
gradient g M to the features (the memory gets none) and then updates M in place from the batch.
Here that is written out (spec 4), with the same effect, per batch:

    x = F.normalize(model(images))                    (3C normalises the features once more)
    loss, parts = memory.loss(x, targets, cameras, reweight)   # logits with M detached
    loss.backward()
    memory.update(x.detach(), targets, cameras)       # no gradient, in place, before the step
    optimizer.step()

The gradient uses the memory as it was in the forward pass and the update lands before the
next forward, exactly as there. Subclasses (one file each) implement ``update``: the ``--cm-mode``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import camera_entropy_loss, cluster_nce


class ClusterMemory(nn.Module):
    name = ""

    def __init__(self, num_features: int, num_clusters: int, temp: float = 0.05, momentum: float = 0.2):
        super().__init__()
        if num_clusters < 1:
            raise ValueError("a cluster memory needs at least one cluster")
        self.num_features = num_features
        self.num_clusters = num_clusters
        self.temp = temp
        self.momentum = momentum
        self.register_buffer("features", torch.zeros(num_clusters, num_features))

    @torch.no_grad()
    def initialise(self, centroids: torch.Tensor) -> None:
        """M = L2norm(centroids) (C x D)."""
        centroids = torch.as_tensor(centroids, dtype=torch.float32)
        if centroids.shape != self.features.shape:
            raise ValueError(f"centroids must be {tuple(self.features.shape)}, got {tuple(centroids.shape)}")
        self.features.copy_(F.normalize(centroids.to(self.features.device), dim=1))

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.mm(self.features.detach().t()) / self.temp

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, cameras: torch.Tensor,
             reweight: bool = False):
        logits = self.logits(inputs)
        loss = camera_entropy_loss(logits, targets, cameras) if reweight else cluster_nce(logits, targets)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def move(self, y: int, x: torch.Tensor) -> None:
        """M_y <- m M_y + (1 - m) x, renormalised."""
        m = self.momentum
        row = m * self.features[y] + (1.0 - m) * x
        self.features[y] = row / row.norm()

    def update(self, inputs: torch.Tensor, targets: torch.Tensor, cameras: torch.Tensor) -> None:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (f"name={self.name}, clusters={self.num_clusters}, temp={self.temp}, momentum={self.momentum}")


def group_by(inputs: torch.Tensor, *keys: torch.Tensor) -> OrderedDict[tuple, torch.Tensor]:
    """The batch's features grouped by key tuples, groups in order of first appearance and
    members in batch order (the original's ``defaultdict(list)`` keyed '<target>_<camera>')."""
    groups: OrderedDict[tuple, list[int]] = OrderedDict()
    for b, key in enumerate(zip(*(k.tolist() for k in keys))):
        groups.setdefault(key, []).append(b)
    return OrderedDict((k, inputs[v]) for k, v in groups.items())
