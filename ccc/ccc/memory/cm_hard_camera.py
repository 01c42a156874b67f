"""``cm_hard_camera`` (in 3C's code, not exposed by its command line): in every (cluster,
camera) group the sample least similar to M_y (M before any update of this batch); then, per
cluster, one update per camera group, in order."""
from __future__ import annotations

from collections import OrderedDict

import torch

from .base import ClusterMemory, group_by


class CMHardCamera(ClusterMemory):
    name = "cm_hard_camera"

    @torch.no_grad()
    def update(self, inputs, targets, cameras) -> None:
        chosen: OrderedDict[int, list[torch.Tensor]] = OrderedDict()
        for (y, _), feats in group_by(inputs, targets, cameras).items():
            sims = feats.mv(self.features[y])
            chosen.setdefault(y, []).append(feats[int(sims.argmin())])
        for y, picks in chosen.items():
            for x in picks:
                self.move(y, x)
