"""``--cm-mode tccl_camera`` (the paper's "TCCL", 3C's re-implementation of Time-based Camera
Contrastive Learning): per (cluster, camera) group of the batch, the L2-normalised group mean
(a camera proxy); per cluster, one update with the camera proxy *least* similar to M_y."""
from __future__ import annotations

from collections import OrderedDict

import torch

from .base import ClusterMemory, group_by


class TCCLCamera(ClusterMemory):
    name = "tccl_camera"

    @torch.no_grad()
    def update(self, inputs, targets, cameras) -> None:
        proxies: OrderedDict[int, list[torch.Tensor]] = OrderedDict()
        for (y, _), feats in group_by(inputs, targets, cameras).items():
            centre = feats.mean(0)
            proxies.setdefault(y, []).append(centre / centre.norm())
        for y, cands in proxies.items():
            cands = torch.stack(cands)
            self.move(y, cands[int(cands.mv(self.features[y]).argmin())])
