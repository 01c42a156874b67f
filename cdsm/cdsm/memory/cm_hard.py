"""CMhard: one proxy per cluster updated with the batch's hardest positive (ClusterContrast's
``--use-hard``, HHCL's ``CMhard``), CDSM's ``--memorybank CMhard``.

Initialisation and loss as CM. Update: once per cluster present in the batch, with the teacher
feature g* least similar to P_y: P_y <- m P_y + (1 - m) g*, renormalised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .cm import CM


class CMHard(CM):
    name = "CMhard"

    @torch.no_grad()
    def update(self, inputs, targets, indexes=None) -> None:
        m = self.momentum
        for c in torch.unique(targets).tolist():
            group = inputs[targets == c]
            hardest = group[torch.argmin(group.mv(self.features[c]))]
            self.features[c] = F.normalize(m * self.features[c] + (1.0 - m) * hardest, dim=0)
