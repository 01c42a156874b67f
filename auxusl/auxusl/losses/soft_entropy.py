"""Soft cross-entropy of the mean teacher: -sum softmax(z_teacher) log softmax(z_student)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class SoftEntropy(nn.Module):
    def forward(self, logits, teacher_logits):
        log_probs = F.log_softmax(logits, dim=1)
        return (-F.softmax(teacher_logits, dim=1).detach() * log_probs).mean(0).sum()
