"""Soft triplet loss of the mean teacher.

The hardest positive / negative of every row are chosen with the *student's* distances; the
target is softmax over the *teacher's* distances (d_ap, d_an) at those indices (detached); the
loss is the cross-entropy with the student's log-softmax over its (d_ap, d_an), batch mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .triplet import batch_hard, euclidean_dist


class SoftTripletLoss(nn.Module):
    def forward(self, features, teacher_features, labels):
        d_ap, d_an, ap_idx, an_idx = batch_hard(euclidean_dist(features, features), labels)
        log_p = F.log_softmax(torch.stack((d_ap, d_an), dim=1), dim=1)
        ref = euclidean_dist(teacher_features, teacher_features)
        rows = torch.arange(len(labels), device=ref.device)
        target = F.softmax(torch.stack((ref[rows, ap_idx], ref[rows, an_idx]), dim=1), dim=1).detach()
        return (-target * log_p).mean(0).sum()
