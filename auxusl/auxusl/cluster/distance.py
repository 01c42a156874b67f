"""The clustering distance: Jaccard distance of the raw features, modified by SCP and STS.

    D = jaccard(features; k1, k2)                       common_eval.jaccard_distance (SpCL's)
    D = D + lambda_c * SCP          if SCP is given     SCP[i, j] = 1 when i, j share a camera
    D = D * S                       if S is given       S = 1 + lambda_s * exp(-gamma * P)

The Jaccard distance is sparse (an absent entry means exactly 1) and goes straight to DBSCAN
when nothing modifies it; with SCP or STS the N x N dense matrix is built (absent entries =
1 before the modification), as the original's dense arithmetic.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from common_eval import jaccard_distance


def sts_factor(P: np.ndarray, lam: float = 0.6, gamma: float = 8.0) -> np.ndarray:
    """STS's multiplicative factor 1 + lambda * exp(-gamma * P), float32."""
    return (1.0 + lam * np.exp(-gamma * np.asarray(P, dtype=np.float64))).astype(np.float32)


def clustering_distance(
    features: np.ndarray,
    k1: int = 30,
    k2: int = 6,
    scp: np.ndarray | None = None,
    scp_lambda: float = 0.006,
    sts: np.ndarray | None = None,
):
    """features: N x D raw features; scp: N x N 0/1; sts: N x N factor (``sts_factor``).

    Returns a sparse CSR matrix (no modification) or a dense float32 N x N array."""
    feats = np.ascontiguousarray(features, dtype=np.float32)
    if scp is None and sts is None:
        return jaccard_distance(feats, k1=k1, k2=k2)
    D = jaccard_distance(feats, k1=k1, k2=k2, output="dense")
    if scp is not None:
        D = D + np.float32(scp_lambda) * np.asarray(scp, dtype=np.float32)
    if sts is not None:
        D = D * np.asarray(sts, dtype=np.float32)
    return D.astype(np.float32, copy=False)


def adaptive_eps(D, rho: float = 1.6e-3) -> float:
    """The original's eps: the mean of the smallest round(rho * M) of the M strictly positive
    entries of D's upper triangle (a sparse D's absent entries are 1 and count in M)."""
    N = D.shape[0]
    if sparse.issparse(D):
        upper = sparse.triu(D, k=1).tocoo()
        vals = upper.data[upper.data > 0]
        absent = N * (N - 1) // 2 - upper.nnz  # pairs not stored: distance exactly 1
        M = vals.size + absent
        top = int(np.round(rho * M))
        vals = np.sort(vals)
        if top <= vals.size:
            chosen = vals[:top]
        else:
            chosen = np.concatenate([vals, np.ones(top - vals.size, dtype=vals.dtype)])
    else:
        iu = np.triu_indices(N, k=1)
        vals = np.asarray(D)[iu]
        vals = np.sort(vals[vals > 0])
        M = vals.size
        top = int(np.round(rho * M))
        chosen = vals[:top]
    if top < 1 or chosen.size == 0:
        raise ValueError(
            f"adaptive eps: rho {rho} selects no pair among the {M} positive distances of "
            f"{N} samples; raise CLUSTER.ADAPTIVE_RHO or set CLUSTER.ADAPTIVE False"
        )
    return float(np.mean(chosen, dtype=np.float64))
