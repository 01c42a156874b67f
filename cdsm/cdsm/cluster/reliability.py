"""CDSM's reliability criterion (a variant of SpCL's self-paced criterion).

DBSCAN runs at three radii: eps (the pseudo-labels), eps_t = eps - gap ("tight") and
eps_l = eps + gap ("loose"). In each clustering every outlier becomes its own singleton cluster.
For sample i, with A_i, T_i, L_i its clusters at eps, eps_t, eps_l:

    R_comp(i)  = |A_i n T_i| / |A_i u T_i|      (compactness)
    R_indep(i) = |A_i n L_i| / |A_i u L_i|      (independence)

Both are IoUs in [0, 1]; higher means more reliable (SpCL used 1 - IoU and minima). Per eps
cluster c, over its members: theta_comp_c = 0.2 max R_comp, theta_indep_c = 0.2 max R_indep.
A sample is *reliable* when R_comp >= theta_comp or R_indep >= theta_indep of its cluster; only
reliable samples (besides the first, most peripheral one) can become diversity samples.

The released code builds three N x N "same label" matrices (4.3 GB each on MSMT17); here the
intersections are counted per (label, label) pair in O(N):
|A n B| = size of the pair group, |A u B| = |A| + |B| - |A n B|.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

THRESHOLD_RATIO = 0.2


def with_singletons(labels) -> np.ndarray:
    """Outliers (-1) get fresh labels C, C+1, ... in index order (C = number of clusters)."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    outliers = labels < 0
    start = labels.max(initial=-1) + 1
    labels[outliers] = start + np.arange(int(outliers.sum()))
    return labels


def iou_per_sample(a, b) -> np.ndarray:
    """|A_i n B_i| / |A_i u B_i| for every i, where A_i (B_i) is the set of samples that share
    i's label in ``a`` (``b``). Labels must be >= 0 (apply ``with_singletons`` first)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    size_a = np.bincount(a)[a]
    size_b = np.bincount(b)[b]
    _, pair, pair_count = np.unique(np.stack([a, b], axis=1), axis=0, return_inverse=True,
                                    return_counts=True)
    inter = pair_count[pair.ravel()]
    return inter / (size_a + size_b - inter)


@dataclass
class Reliability:
    r_comp: np.ndarray       # (N,) float
    r_indep: np.ndarray      # (N,) float
    thr_comp: np.ndarray     # (C,) per eps-cluster threshold
    thr_indep: np.ndarray    # (C,)
    reliable: np.ndarray     # (N,) bool; False for outliers

    @property
    def num_reliable(self) -> int:
        return int(self.reliable.sum())


def reliability(labels, labels_tight, labels_loose, ratio: float = THRESHOLD_RATIO) -> Reliability:
    """R_comp, R_indep and the per-cluster thresholds from the three DBSCAN labelings (-1 = outlier)."""
    labels = np.asarray(labels, dtype=np.int64)
    a = with_singletons(labels)
    r_comp = iou_per_sample(a, with_singletons(labels_tight))
    r_indep = iou_per_sample(a, with_singletons(labels_loose))
    C = int(labels.max(initial=-1)) + 1
    members = labels >= 0
    thr_comp = np.zeros(C)
    thr_indep = np.zeros(C)
    np.maximum.at(thr_comp, labels[members], r_comp[members])
    np.maximum.at(thr_indep, labels[members], r_indep[members])
    thr_comp *= ratio
    thr_indep *= ratio
    reliable = np.zeros(len(labels), dtype=bool)
    y = labels[members]
    reliable[members] = (r_comp[members] >= thr_comp[y]) | (r_indep[members] >= thr_indep[y])
    return Reliability(r_comp, r_indep, thr_comp, thr_indep, reliable)
