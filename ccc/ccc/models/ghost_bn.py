"""Ghost BatchNorm (``--bn-slices K``): the BatchNorm statistics of 3C's ``nn.DataParallel`` on K
GPUs, in one forward on one device.

DataParallel scatters the batch into K parts as ``torch.chunk`` does; every replica normalises
its part with that part's own batch statistics, and only the replica on the first device shares
the module's buffers, so the running statistics follow part 0 alone. In training a converted
BatchNorm cuts its input the same way, normalises every part with its own statistics, and
updates the running statistics (and ``num_batches_tracked``) from part 0 only. Eval mode is
plain BatchNorm. Only the class changes: parameter and buffer names (checkpoints) are the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _GhostBatchNorm:
    num_slices = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.num_slices <= 1:
            return super().forward(x)
        parts = x.chunk(self.num_slices)
        out = [super().forward(parts[0])]   # running statistics from the first part only
        out += [F.batch_norm(p, None, None, self.weight, self.bias, True, 0.0, self.eps) for p in parts[1:]]
        return torch.cat(out)


class GhostBatchNorm1d(_GhostBatchNorm, nn.BatchNorm1d):
    pass


class GhostBatchNorm2d(_GhostBatchNorm, nn.BatchNorm2d):
    pass


GHOST = {nn.BatchNorm1d: GhostBatchNorm1d, nn.BatchNorm2d: GhostBatchNorm2d}


def set_ghost_bn(model: nn.Module, num_slices: int) -> nn.Module:
    """Converts ``model``'s BatchNorm1d/2d in place to K = ``num_slices`` slices (1: plain)."""
    for m in model.modules():
        if type(m) in GHOST:
            m.__class__ = GHOST[type(m)]
        if isinstance(m, _GhostBatchNorm):
            m.num_slices = int(num_slices)
    return model
