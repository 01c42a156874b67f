"""The clustering distance: Jaccard distance of the raw features, modified by SCP and STS.

    D = jaccard(features; k1, k2)                       ``jaccard_float32`` (SpCL's, float32)
    D = D + lambda_c * SCP          if SCP is given     SCP[i, j] = 1 when i, j share a camera
    D = D * S                       if S is given       S = 1 + lambda_s * exp(-gamma * P)

The Jaccard distance is sparse (an absent entry means exactly 1) and goes straight to DBSCAN
when nothing modifies it; with SCP or STS the N x N dense matrix is built (absent entries =
1 before the modification), as the original's dense arithmetic.

The arithmetic is the original's float32 (its ``compute_jaccard_distance`` keeps V, the query
expansion and the sums of minima in float32 numpy arrays). It matters at the tail that the
adaptive eps reads: the smallest positive distances are rounding leftovers of pairs whose
distance is exactly 0 in exact arithmetic (near-duplicate samples, e.g. the dense chunks of one
tracklet, with the same expanded neighbourhood), about 6e-8 (one float32 rounding of the sum of
minima below 1) or exactly 0 in float32, about 1e-16 in float64 and exactly 0 less often, so
a float64 distance gives a different eps (0.05 instead of 0.13 on DukeV-like dense chunks).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse

from common_eval.jaccard import expanded_sets, jaccard_from_encoding


def _faiss_l2_ranks(X: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """The k nearest rows of every row (self included) ranked as faiss's IndexFlatL2 ranks
    them: |x|^2 + |y|^2 - 2 x.y in float32, clipped at 0; exact ties by index."""
    N = X.shape[0]
    sq = (X * X).sum(axis=1, dtype=np.float32)
    out = np.empty((N, k), dtype=np.int64)
    for s in range(0, N, block):
        e = min(N, s + block)
        d = np.matmul(X[s:e], X.T)
        d *= np.float32(-2.0)
        d += sq[None, :]
        d += sq[s:e, None]
        np.maximum(d, np.float32(0.0), out=d)
        if k < N:
            part = np.argpartition(d, k - 1, axis=1)[:, :k]
            vals = np.take_along_axis(d, part, 1)
            order = np.lexsort((part, vals), axis=1)  # by (distance, index)
            out[s:e] = np.take_along_axis(part, order, 1)
            # a row whose k-th distance is tied with columns left out: ties by index
            tied = np.flatnonzero((d <= vals.max(axis=1, keepdims=True)).sum(axis=1) > k)
            for r in tied:
                c = np.flatnonzero(d[r] <= vals[r].max())
                out[s + r] = c[np.lexsort((c, d[r, c]))[:k]]
        else:
            out[s:e] = np.argsort(d, axis=1, kind="stable")
    return out


def jaccard_float32(features, k1: int = 30, k2: int = 6, output: str = "sparse", num_threads=None,
                    cutoff: float | None = None):
    """The original's Jaccard distance (SpCL's ``compute_jaccard_distance``) in its float32
    arithmetic, sparse (absent entries mean exactly 1, as ``common_eval.jaccard_distance``):

    * kNN (k1 columns, Euclidean on the raw features, ties by index) and the expanded
      k-reciprocal sets: ``common_eval`` (exact, the same sets);
    * V row i over its expanded set E(i) (ascending indices): ``softmax(-(2 - 2 x_i.x_E))``
      in float32 (dot products in float32; torch's float32 softmax, as the original);
    * query expansion: the k2 neighbour rows of V added in neighbour order in float32, then
      divided by k2 in float32 (numpy's float32 ``mean`` over axis 0);
    * sums of minima accumulated in float32 over ascending columns, d = 1 - S / (2 - S) in
      float32, negatives clipped to 0 (``common_eval.jaccard_from_encoding`` on a float32 V).

    ``cutoff`` (sparse output): keep only the entries d <= cutoff, the same values as without it
    (DBSCAN at any eps <= cutoff finds the same neighbours; memory grows with N times the
    neighbours within the cutoff instead of N times the expanded neighbourhood).
    """
    X = np.asarray(features)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D (N, dim) array, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or inf (a diverged model?)")
    if int(k1) != k1 or k1 < 1 or int(k2) != k2 or k2 < 1:
        raise ValueError(f"k1 and k2 must be positive integers, got {k1!r}, {k2!r}")
    N = X.shape[0]
    threads = int(num_threads or torch.get_num_threads() or 1)
    ranks = _faiss_l2_ranks(X, min(int(k1), N))
    E = expanded_sets(ranks, int(k1))  # indices sorted within each row
    indptr, indices = E.indptr.astype(np.int64), E.indices.astype(np.int64)
    weights = np.empty(E.nnz, dtype=np.float32)
    T, cols = torch.from_numpy(X), torch.from_numpy(indices)
    with torch.no_grad():
        for i in range(N):  # row by row, as the original: the float32 bits of mm and softmax
            a, b = indptr[i], indptr[i + 1]
            dist = 2 - 2 * torch.mm(T[i : i + 1], T.index_select(0, cols[a:b]).t())
            weights[a:b] = torch.softmax(-dist, dim=1).view(-1).numpy()
    V = sparse.csr_matrix((weights, indices, indptr), shape=(N, N))
    k2 = min(int(k2), ranks.shape[1])
    if k2 != 1:
        acc = V[ranks[:, 0]]
        for k in range(1, k2):
            acc = acc + V[ranks[:, k]]  # float32 + float32 -> float32, neighbour order
        acc.data /= np.float32(k2)
        V = acc.tocsr()
    V.eliminate_zeros()
    return jaccard_from_encoding(V, output=output, num_threads=threads, cutoff=cutoff)


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
    cutoff: float | None = None,
):
    """features: N x D raw features; scp: N x N 0/1; sts: N x N factor (``sts_factor``).

    Returns a sparse CSR matrix (no modification; with ``cutoff``, only its entries <= cutoff) or
    a dense float32 N x N array (SCP / STS: every entry, ``cutoff`` does not apply)."""
    feats = np.ascontiguousarray(features, dtype=np.float32)
    if scp is None and sts is None:
        return jaccard_float32(feats, k1=k1, k2=k2, cutoff=cutoff)
    D = jaccard_float32(feats, k1=k1, k2=k2, output="dense")
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
