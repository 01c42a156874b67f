"""The per-cluster memory of BUC's repelled loss (spec B5).

V (clusters x features) is a buffer, not a parameter: it is never in the optimiser and receives no
gradient. It starts at **zeros** and is created anew, at zeros, after every merge (the authors'
fix, README "Updates": the pre-fix code filled it with averages grouped by the labels from before
the merge, a label leak).

Update rule, applied after the backward pass with the batch's embeddings, sample by sample in
batch order (so duplicate labels in one batch are updated one after the other):

    V[y] <- (V[y] + v) / 2,   V[y] <- V[y] / ||V[y]||

The first touch of a zero slot gives V[y] = v / ||v||. The original did this inside a legacy
``autograd.Function.backward`` (removed in PyTorch 1.5); here it is an explicit call, made after
``loss.backward()`` so that the gradient used the memory from before the update, as before.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ExclusiveMemory(nn.Module):
    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"the memory needs at least one cluster, got {num_classes}")
        self.num_features = num_features
        self.num_classes = num_classes
        self.register_buffer("V", torch.zeros(num_classes, num_features))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Inner products with every slot, (batch, clusters); gradient flows to inputs only."""
        return inputs.mm(self.V.detach().t())

    @torch.no_grad()
    def update(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        inputs = inputs.detach().to(self.V.dtype)
        for x, y in zip(inputs, targets.tolist()):
            self.V[y] = F.normalize((self.V[y] + x) / 2, p=2, dim=0)

    def extra_repr(self) -> str:
        return f"clusters={self.num_classes}, features={self.num_features}"
