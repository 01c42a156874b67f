"""RLSCE's neighbour map: which clusters share a cluster's label-smoothing mass.

The Jaccard distance between the (unnormalised) cluster centroids, each row sorted ascending,
the first K + 1 columns (the cluster itself, at distance 0, included) marked 1 in a C x C map.
With k1 = 30 most centroid pairs are at Jaccard distance exactly 1, so many "neighbours" are
picks among ties: the sort here is stable (ties by cluster index); the original's torch.sort
leaves tie order unspecified.
"""

from __future__ import annotations

import numpy as np
import torch

from .distance import jaccard_float32


def neighbour_map(centroids: np.ndarray, K: int, k1: int = 30, k2: int = 6) -> torch.Tensor:
    C = np.asarray(centroids, dtype=np.float32)
    n = C.shape[0]
    D = jaccard_float32(C, k1=k1, k2=k2, output="dense")  # the original's float32 arithmetic
    order = np.argsort(D, axis=1, kind="stable")[:, : K + 1]
    M = np.zeros((n, n), dtype=np.int32)
    np.put_along_axis(M, order, 1, axis=1)
    return torch.from_numpy(M)
