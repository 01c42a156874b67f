"""3C's k-reciprocal Jaccard distance (``utils/faiss_rerank.compute_jaccard_distance``).

SpCL's algorithm with 3C's neighbour count: the kNN search returns k1 + 1 columns (SpCL, CC and
CDSM ask for k1), so the k-reciprocal window is k1 + 1 (31 for k1 = 30) and the half window
round(k1/2) + 1 (16), as in the original re-ranking paper; k2 = 6 query expansion. It goes
through ``common_eval.jaccard_distance`` (sparse and exact); 3C's own version holds three dense
N x N arrays and vectorises the query expansion as V[R[:, :k2]].mean(1), which allocates
N x k2 x N floats (4 GB on Market, about 25 GB on MSMT17; spec 3.10.5).
"""
from __future__ import annotations

import numpy as np

from common_eval import jaccard_distance as _common_jaccard


def jaccard_distance(features, k1: int = 30, k2: int = 6, dense: bool = False,
                     num_threads: int | None = None, cutoff: float | None = None):
    """Sparse CSR (absent entries = 1; for DBSCAN and HDC) or, with ``dense``, the N x N float32
    array (what HDC was given before it took the sparse one; ``python -m ccc.hdc.bench``) of
    L2-normalised features. ``cutoff`` (sparse only): keep the entries d <= cutoff (DBSCAN passes
    its eps: the others are never neighbours, so its labels are unchanged)."""
    X = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    return _common_jaccard(X, k1=k1, k2=k2, knn_columns=k1 + 1, output="dense" if dense else "sparse",
                           cutoff=cutoff, num_threads=num_threads)
