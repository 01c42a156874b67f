"""Ghost BatchNorm: the BatchNorm statistics nn.DataParallel gave the original on 4 GPUs.

DataParallel scatters the batch of tracklets into K equal parts (``torch.chunk``); every replica
normalises its part with its own batch statistics, and only the first replica shares the
module's buffers, so the running statistics are updated from the first part only. A converted
BatchNorm does the same on one device: in training the batch is cut into ``num_slices`` parts
along the tracklet dimension (``group`` consecutive rows = the frames of one tracklet stay in one
part), each normalised with its own statistics, and the running statistics come from part 0.
Eval mode is plain BatchNorm. The conversion changes the class only: parameter and buffer names
(and so checkpoints) are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Ghost:
    num_slices = 1
    group = 1  # consecutive rows that form one sample (the frames of one tracklet)

    def forward(self, x):
        if not self.training or self.num_slices <= 1:
            return super().forward(x)
        n_items = x.shape[0] // self.group
        sizes = [len(c) * self.group for c in torch.arange(n_items).chunk(self.num_slices)]
        parts = x.split(sizes)
        out = [super().forward(parts[0])]  # running statistics and num_batches_tracked
        for p in parts[1:]:
            out.append(F.batch_norm(p, None, None, self.weight, self.bias, True, 0.0, self.eps))
        return torch.cat(out)


class GhostBatchNorm1d(_Ghost, nn.BatchNorm1d):
    pass


class GhostBatchNorm2d(_Ghost, nn.BatchNorm2d):
    pass


_GHOST = {nn.BatchNorm1d: GhostBatchNorm1d, nn.BatchNorm2d: GhostBatchNorm2d}


def set_ghost_bn(model: nn.Module, num_slices: int) -> nn.Module:
    """Converts model's BatchNorm1d/2d in place (num_slices <= 1 leaves them plain). For a video
    model whose input is (B, T, ...), a forward pre-hook sets the group to T."""
    for m in model.modules():
        if type(m) in _GHOST or isinstance(m, _Ghost):
            if not isinstance(m, _Ghost):
                m.__class__ = _GHOST[type(m)]
            m.num_slices = int(num_slices)

    def frames(module, args):
        g = args[0].shape[1] if args[0].dim() == 5 else 1
        for m in module.modules():
            if isinstance(m, _Ghost):
                m.group = g

    if not hasattr(model, "_ghost_hook"):
        model._ghost_hook = model.register_forward_pre_hook(frames)
    return model
