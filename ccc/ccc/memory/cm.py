"""``--cm-mode cm`` (the paper's "Vanilla" update): every sample of the batch, in order,
M_y <- m M_y + (1 - m) f, renormalised."""
from __future__ import annotations

import torch

from .base import ClusterMemory


class CM(ClusterMemory):
    name = "cm"

    @torch.no_grad()
    def update(self, inputs, targets, cameras=None) -> None:
        for x, y in zip(inputs, targets.tolist()):
            self.move(y, x)
