"""ExLoss: the repelled (exclusive) loss of BUC (spec B5).

Logits ``z = t * <v, V_j>`` against every cluster slot of the memory (t = 10, i.e. temperature
0.1); loss = plain mean cross-entropy against the pseudo-labels. The gradient reaches only the
embeddings v (dL/dv_i = t/B * sum_j (p_ij - [j = y_i]) V_j, with the memory before this batch's
update). The memory update is explicit: call ``update_memory(v, y)`` after ``loss.backward()``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..memory import ExclusiveMemory


class ExLoss(nn.Module):
    def __init__(self, num_features: int, num_classes: int, t: float = 1.0, weight=None):
        super().__init__()
        self.t = t
        self.weight = weight
        self.memory = ExclusiveMemory(num_features, num_classes)

    @property
    def V(self) -> torch.Tensor:
        return self.memory.V

    @property
    def num_classes(self) -> int:
        return self.memory.num_classes

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor):
        outputs = self.memory(inputs) * self.t
        loss = F.cross_entropy(outputs, targets, weight=self.weight)
        return loss, outputs

    def update_memory(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.memory.update(inputs, targets)
