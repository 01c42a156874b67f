"""ID_OPTION 1: plain cross-entropy on the pseudo-labels."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class CrossEntropyLoss(nn.Module):
    def forward(self, logits, targets):
        return F.cross_entropy(logits, targets)
