"""``--cm-mode cm_hard`` (the paper's "Hard" update, ClusterContrast's ``--use-hard``): once per
cluster present in the batch (in order of first appearance), with the sample *least* similar to
M_y (first on ties)."""
from __future__ import annotations

import torch

from .base import ClusterMemory, group_by


class CMHard(ClusterMemory):
    name = "cm_hard"

    @torch.no_grad()
    def update(self, inputs, targets, cameras=None) -> None:
        for (y,), feats in group_by(inputs, targets).items():
            sims = feats.mv(self.features[y])
            self.move(y, feats[int(sims.argmin())])
