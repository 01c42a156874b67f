"""Ghost BatchNorm: the BatchNorm statistics that nn.DataParallel on K GPUs gave the original.

DataParallel scatters a batch into K consecutive parts (``torch.chunk``); each replica
normalises its part with that part's own statistics, and only the first replica holds the
module's buffers, so the running statistics follow part 0. ``set_ghost_bn(model, K)`` makes a
model's BatchNorm layers do the same on one device: in training the batch is cut into K
parts, part 0 goes through the plain BatchNorm (running statistics, num_batches_tracked), the
others are normalised with their own statistics only. Eval mode is plain BatchNorm. The
conversion swaps the class only: parameter and buffer names, and so checkpoints, are unchanged.

A part must hold at least 2 samples for BatchNorm1d (batch statistics of one sample are
undefined; DataParallel would fail there too), so a batch too small for K parts of 2 is cut
into fewer.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Ghost:
    num_slices = 1

    def forward(self, x):
        k = min(self.num_slices, x.shape[0] // 2)
        if not self.training or k <= 1:
            return super().forward(x)
        parts = x.chunk(k)
        out = [super().forward(parts[0])]
        out += [F.batch_norm(p, None, None, self.weight, self.bias, True, 0.0, self.eps) for p in parts[1:]]
        return torch.cat(out)


class GhostBatchNorm1d(_Ghost, nn.BatchNorm1d):
    pass


class GhostBatchNorm2d(_Ghost, nn.BatchNorm2d):
    pass


_GHOST = {nn.BatchNorm1d: GhostBatchNorm1d, nn.BatchNorm2d: GhostBatchNorm2d}


def set_ghost_bn(model: nn.Module, num_slices: int) -> nn.Module:
    """Sets every BatchNorm1d/2d of model (in place) to ``num_slices`` parts; 1 = plain BatchNorm."""
    for m in model.modules():
        if type(m) in _GHOST:
            m.__class__ = _GHOST[type(m)]
        if isinstance(m, _Ghost):
            m.num_slices = int(num_slices)
    return model
