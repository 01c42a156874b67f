"""``cm_camera`` (in 3C's code, not exposed by its command line): for every (cluster, camera)
group of the batch, in order of first appearance, M_y <- m M_y + (1 - m) (the group's first
sample), renormalised."""
from __future__ import annotations

import torch

from .base import ClusterMemory, group_by


class CMCamera(ClusterMemory):
    name = "cm_camera"

    @torch.no_grad()
    def update(self, inputs, targets, cameras) -> None:
        for (y, _), feats in group_by(inputs, targets, cameras).items():
            self.move(y, feats[0])
