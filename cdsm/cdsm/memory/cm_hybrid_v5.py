"""CMhybrid_v5: CDSM's diversity memory (the paper's method, ``--memorybank CMhybrid_v5``).

Per cluster c (C clusters at eps, K = --mem-instances):

* **layout**: (K + 1) * C rows; row c is the central proxy P_c, rows c + j*C (j = 1..K) are the
  marginal ("diversity") proxies Q_cj;
* **initialisation** from the DBSCAN *core* samples of c in dataset order (sorted paths):
  P_c = L2norm(mean), Q_cj = L2norm(mean of chunk j of ``torch.chunk(core, K)``), a missing
  chunk getting the whole mean;
* **loss**: (1 - w) CE(<f, P> / tau, y) + w CE(z / tau, y), z = mean positive marginal, hardest
  marginal of every negative cluster (losses/hybrid_contrast.py), w = --hard-weight;
* **update** (diversity sample mining), with the teacher's features of the batch: P_c moves
  towards the batch's most central sample; the marginal proxies move towards mutually distant,
  peripheral samples that pass the reliability criterion (cluster/reliability.py):
  R_comp(i) >= theta_comp_c or R_indep(i) >= theta_indep_c. Momentum m = --momentum, no
  renormalisation.

The reliability scores are looked up by each sample's index in the full (sorted) training list;
the released code used its index in the outlier-free list, which is misaligned (spec 2.8.5).
"""
from __future__ import annotations

import torch

from .cm_hybrid_v4 import CMHybridV4


class CMHybridV5(CMHybridV4):
    name = "CMhybrid_v5"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("r_comp", torch.zeros(0))
        self.register_buffer("r_indep", torch.zeros(0))
        self.register_buffer("thr_comp", torch.zeros(self.num_clusters))
        self.register_buffer("thr_indep", torch.zeros(self.num_clusters))

    def set_reliability(self, r_comp, r_indep, thr_comp, thr_indep) -> None:
        """Per-sample R_comp, R_indep (N, full training list) and per-cluster thresholds (C)."""
        thr_comp = torch.as_tensor(thr_comp, dtype=torch.float32)
        thr_indep = torch.as_tensor(thr_indep, dtype=torch.float32)
        if len(thr_comp) != self.num_clusters or len(thr_indep) != self.num_clusters:
            raise ValueError(f"expected {self.num_clusters} per-cluster thresholds, got "
                             f"{len(thr_comp)} and {len(thr_indep)}")
        self.r_comp = torch.as_tensor(r_comp, dtype=torch.float32).cpu()
        self.r_indep = torch.as_tensor(r_indep, dtype=torch.float32).cpu()
        self.thr_comp = thr_comp.cpu()
        self.thr_indep = thr_indep.cpu()

    def eligible(self, cluster: int, indexes: torch.Tensor) -> torch.Tensor:
        if self.r_comp.numel() == 0:
            raise RuntimeError("CMhybrid_v5: call set_reliability() before training")
        return ((self.r_comp[indexes] >= self.thr_comp[cluster])
                | (self.r_indep[indexes] >= self.thr_indep[cluster]))
