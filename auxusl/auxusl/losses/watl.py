"""TRI_OPTION 2: weight-adaptive triplet loss (WATL, paper eq. 5-6).

    t_i = d_ap - d_an + m          (batch-hard, raw features; m = TRI_MARGIN = 0.5)
    w_i = exp(lambda * t_i)  if t_i > 0  else 0                    (lambda = TRI_LAMBDA)
    loss = mean_i w_i * t_i

A negative lambda down-weights the most violating (likely mislabelled) triplets. As in the
original, w is not detached, so the gradient of a term is exp(lambda t)(1 + lambda t) dt; the
original computes d_ap - d_an as the difference of the two log-softmax entries, which is the
same number.
"""

from __future__ import annotations

import torch
from torch import nn

from .triplet import batch_hard, euclidean_dist


class WeightAdaptiveTripletLoss(nn.Module):
    def __init__(self, margin: float = 0.5, lambda_value: float = -1.0):
        super().__init__()
        self.margin = margin
        self.lambda_value = lambda_value

    def forward(self, features, labels):
        d_ap, d_an, _, _ = batch_hard(euclidean_dist(features, features), labels)
        t = d_ap - d_an + self.margin
        w = torch.where(t > 0, torch.exp(self.lambda_value * t), torch.zeros_like(t))
        return (w * t).mean()
