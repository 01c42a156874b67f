"""``--cm-mode hd_camera``: CHD, confidence-integrated harmonic discrepancy (3C's memory update;
spec 3.5).

1. Group the batch by (cluster y, camera q); the camera centre c = L2norm(mean of the group).
2. For each f of the group: xc = <f, c> + 1 (in [0, 2]: how representative f is of its camera
   group), xz = 1 - <f, M_y> (in [0, 2]: how hard f is for the proxy), and
   chd = xz xc / (xz + xc); keep the group's argmax f* (first on ties).
3. Per cluster, the camera group whose f* has the largest chd (the first group on ties, as the
   original's stable descending sort), and **one** update M_y <- m M_y + (1 - m) f*, renormalised.
All chd values are computed with M as it was before this batch's updates.
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from .base import ClusterMemory, group_by


def harmonic_scores(feats: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
    """chd of every row of ``feats`` (one camera group) against the cluster's proxy."""
    centre = feats.mean(0, keepdim=True)
    centre = centre / centre.norm()
    xc = feats.mm(centre.t()).squeeze(1) + 1
    xz = 1 - feats.mv(proxy)
    return xz * xc / (xz + xc)


class HDCamera(ClusterMemory):
    name = "hd_camera"

    @torch.no_grad()
    def update(self, inputs, targets, cameras) -> None:
        best: OrderedDict[int, tuple[torch.Tensor, float]] = OrderedDict()
        for (y, _), feats in group_by(inputs, targets, cameras).items():
            chd = harmonic_scores(feats, self.features[y])
            k = int(torch.nan_to_num(chd, nan=float("-inf")).argmax())
            score = float(chd[k])
            if y not in best or score > best[y][1]:
                best[y] = (feats[k], score)
        for y, (x, _) in best.items():
            self.move(y, x)
