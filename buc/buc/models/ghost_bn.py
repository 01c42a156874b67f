"""Ghost BatchNorm: the BatchNorm statistics of the original's nn.DataParallel, on one device.

The authors wrapped the model in nn.DataParallel (1 GPU for images, 2 for video). DataParallel
scatters the batch into K parts along the sample dimension (``torch.chunk``); every replica
normalises its part with its own batch statistics, and only the first replica's buffers are the
module's, so the running statistics come from the first part only. ``set_ghost_bn(model, K)``
does the same in one process: in training each BatchNorm cuts its input into the K parts, the
rows of one sample (the frames of one tracklet, for the backbone's BatchNorm2d) staying in one
part, normalises each part with its own statistics and updates the running statistics from part
0. Eval mode is plain BatchNorm. Only the class changes: parameter and buffer names (and so
checkpoints) are unchanged.

The rows of one sample: a forward pre-hook on the model records the number of samples B of its
input (batch, frames, ...); a BatchNorm that sees B * T rows treats T consecutive rows as one
sample (the backbone sees every frame, the embedding BatchNorm1d one row per tracklet).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Ghost:
    num_slices = 1
    num_samples = 0  # samples in the model's current input (set by the pre-hook)

    def forward(self, x):
        if not self.training or self.num_slices <= 1:
            return super().forward(x)
        n = self.num_samples
        group = x.shape[0] // n if n and x.shape[0] % n == 0 else 1
        sizes = [len(c) * group for c in torch.arange(x.shape[0] // group).chunk(self.num_slices)]
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
    """Converts model's BatchNorm1d/2d in place to num_slices ghost slices (1 = plain BN)."""
    for m in model.modules():
        if type(m) in _GHOST:
            m.__class__ = _GHOST[type(m)]
        if isinstance(m, _Ghost):
            m.num_slices = int(num_slices)

    def record_samples(module, args):
        for m in module.modules():
            if isinstance(m, _Ghost):
                m.num_samples = args[0].shape[0]

    if not hasattr(model, "_ghost_hook"):
        model._ghost_hook = model.register_forward_pre_hook(record_samples)
    return model
