"""ID_OPTION 2: label-smoothing cross-entropy (LSCE), q = (1 - eps) onehot + eps / C."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLabelSmooth(nn.Module):
    """C = ``num_classes`` (the number of clusters); loss = sum_j -q_j log softmax(z)_j, batch mean."""

    def __init__(self, num_classes: int, epsilon: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits, targets):
        log_probs = F.log_softmax(logits, dim=1)
        onehot = torch.zeros_like(log_probs).scatter_(1, targets.unsqueeze(1), 1)
        q = (1 - self.epsilon) * onehot + self.epsilon / self.num_classes
        return (-q * log_probs).mean(0).sum()
