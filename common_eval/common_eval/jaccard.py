"""k-reciprocal encoding: the Jaccard distance used for clustering, and test-time re-ranking.

Both algorithms build the same sparse object: for every item i its k-reciprocal set R(i),
expanded by the half-size sets of its members that overlap it by more than 2/3, weighted,
optionally averaged over the k2 nearest neighbours (query expansion), and compared through
sum-of-minima. The originals store every step as dense N x N arrays; here every step is a
sparse matrix with a few dozen entries per row, and the sum-of-minima runs in an OpenMP kernel
over rows. Results equal the dense algorithms entry for entry.

* ``jaccard_distance``: SpCL's ``compute_jaccard_distance`` (used by CDSM, 3C, AuxUSL).
  Returns a sparse CSR matrix whose stored entries are every pair that shares support; an
  absent entry means distance 1 (the dense matrix holds exactly 1 there), so it can go straight
  into ``sklearn.cluster.DBSCAN(metric="precomputed")``.
* ``k_reciprocal_rerank``: Zhong et al.'s re-ranking (CVPR 2017) in the form of torchreid's and
  SpCL's ``re_ranking(q_g_dist, q_q_dist, g_g_dist)``; returns the dense Q x G final distance.

Neighbour lists are ordered by (distance, index): ties are broken by index, where the
originals (faiss, quicksort argsort) leave the order of exact ties unspecified.
"""
from __future__ import annotations

import mmap
import os

import numpy as np
from scipy import sparse

from .rank import distance_block

try:
    from . import _knn
except ImportError as exc:
    raise ImportError(
        "common_eval's compiled extension '_knn' is missing or stale. Build it with "
        "'./reproduce.sh setup' (or 'pip install -e common_eval'); there is no Python fallback."
    ) from exc

_BLOCK_BYTES = 128 * 2**20
_NO_ADD = np.empty(0, dtype=np.float32)


def _output_array(n: int, dtype) -> np.ndarray:
    """An uninitialised array for a large output written once: anonymous memory (mmap) that
    numpy does not advise for transparent huge pages. Where the kernel compacts memory for
    advised regions on first touch (THP defrag=madvise), numpy's np.empty of the Jaccard output
    (336 MB at N = 12,936) costs 0.66 s of page faults in a fresh process against 0.16 s here."""
    dtype = np.dtype(dtype)
    if n * dtype.itemsize < 2**24:
        return np.empty(n, dtype=dtype)
    return np.frombuffer(mmap.mmap(-1, n * dtype.itemsize), dtype=dtype)


def _threads(num_threads):
    return int(num_threads or os.cpu_count() or 1)


def knn(features: np.ndarray, k: int, num_threads: int | None = None, tile: int = 2048):
    """Exact Euclidean k nearest neighbours of every row among all rows (self included).

    Returns (indices int64 (N, k), squared distances float32 (N, k)), ascending, ties by index.
    The Gram matrix is computed by tiles of its upper triangle only; each tile updates the
    lists of its rows and, read down its columns, those of its columns.
    """
    X = np.ascontiguousarray(features, dtype=np.float32)
    N = X.shape[0]
    k = min(k, N)
    threads = _threads(num_threads)
    sq = np.einsum("ij,ij->i", X, X)
    idx = np.empty((N, k), dtype=np.int64)
    val = np.empty((N, k), dtype=np.float32)
    filled = np.zeros(N, dtype=np.int64)
    T = min(tile, N)
    buf = np.empty(T * T, dtype=np.float32)
    for a in range(0, N, T):
        ra = slice(a, min(N, a + T))
        na = ra.stop - a
        for b in range(a, N, T):
            rb = slice(b, min(N, b + T))
            nb = rb.stop - b
            # the kernels rank by |x_j|^2 - 2 x_i.x_j, which orders row i like |x_i - x_j|^2 (the
            # factor -2 is exact in floating point); a diagonal tile X_a X_a^T is one symmetric
            # product (numpy computes half of it, BLAS syrk)
            block = np.matmul(X[ra], X[rb].T, out=buf[: na * nb].reshape(na, nb))
            _knn.topk_merge(block, sq[rb], b, idx[ra], val[ra], filled[ra], threads, -2.0)
            if b != a:  # the same tile for the lists of its columns
                _knn.topk_merge_cols(block, sq[ra], a, idx[rb], val[rb], filled[rb], threads, -2.0)
    val += sq[:, None]
    np.maximum(val, 0.0, out=val)
    return idx, val


def _window_pattern(ranks: np.ndarray, window: int) -> sparse.csr_matrix:
    N = ranks.shape[0]
    w = min(window, ranks.shape[1])
    cols = np.ascontiguousarray(ranks[:, :w]).ravel()
    return sparse.csr_matrix((np.ones(N * w, dtype=np.int32), cols, np.arange(0, N * w + 1, w)),
                             shape=(N, N))


def reciprocal_sets(ranks: np.ndarray, window: int) -> sparse.csr_matrix:
    """R(i) = {j in the first `window` entries of ranks[i] : i in the first `window` of ranks[j]}."""
    F = _window_pattern(ranks, window)
    return F.multiply(F.T).tocsr()


def expanded_sets(ranks: np.ndarray, k1: int) -> sparse.csr_matrix:
    """R*(i): R(i, k1) plus R(c, round(k1/2)) of every member c that it overlaps by > 2/3.

    Windows are k+1 entries of the neighbour list, capped at the columns it has (SpCL asks
    faiss for k1 columns only, so its full window is k1; Zhong's re-ranking has k1+1).
    """
    full = reciprocal_sets(ranks, k1 + 1)
    half = reciprocal_sets(ranks, int(np.around(k1 / 2.0)) + 1)
    overlap = (full @ half.T).multiply(full).tocoo()  # |R(i) ∩ Rh(c)| for c in R(i)
    half_size = np.diff(half.indptr)
    accept = overlap.data > (2.0 / 3.0) * half_size[overlap.col]
    N = ranks.shape[0]
    chosen = sparse.csr_matrix((np.ones(int(accept.sum()), dtype=np.int32),
                                (overlap.row[accept], overlap.col[accept])), shape=(N, N))
    expanded = (full + chosen @ half).tocsr()
    expanded.data[:] = 1
    expanded.sort_indices()
    return expanded


def _row_softmax(pattern: sparse.csr_matrix, logits: np.ndarray) -> sparse.csr_matrix:
    """Row-wise softmax of `logits` (one per stored entry of `pattern`), float64."""
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    row_max = np.full(pattern.shape[0], -np.inf)
    np.maximum.at(row_max, rows, logits)
    w = np.exp(logits - row_max[rows])
    w /= np.bincount(rows, weights=w, minlength=pattern.shape[0])[rows]
    return sparse.csr_matrix((w, pattern.indices, pattern.indptr), shape=pattern.shape)


def _query_expansion(V: sparse.csr_matrix, ranks: np.ndarray, k2: int) -> sparse.csr_matrix:
    if k2 == 1:
        return V
    k2 = min(k2, ranks.shape[1])
    N = V.shape[0]
    Q = sparse.csr_matrix((np.full(N * k2, 1.0 / k2), np.ascontiguousarray(ranks[:, :k2]).ravel(),
                           np.arange(0, N * k2 + 1, k2)), shape=(N, N))
    return (Q @ V).tocsr()


def _minsum(V: sparse.csr_matrix, rows: np.ndarray, col_begin: int, col_end: int,
            sort_rows: bool, num_threads, dtype=np.float64):
    """Jaccard distances of `rows` of V against columns [col_begin, col_end), as CSR arrays
    (indptr, int32 columns, float32 distances), sized exactly: one counting pass, one filling.
    dtype: the arithmetic of the sums of minima and of 1 - S / (2 - S) (float64, or float32 as
    the originals' dense float32 code)."""
    V = V.tocsr()
    V.eliminate_zeros()
    V.sort_indices()
    T = V.T.tocsr()
    T.sort_indices()
    v_ptr, v_idx = V.indptr.astype(np.int64), V.indices.astype(np.int64)
    t_ptr, t_idx = T.indptr.astype(np.int64), T.indices.astype(np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    threads = _threads(num_threads)
    lengths = np.empty(len(rows), dtype=np.int64)
    _knn.minsum_count(v_ptr, v_idx, t_ptr, t_idx, rows, col_begin, col_end, lengths, threads)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    cols = _output_array(indptr[-1], np.int32)
    dists = _output_array(indptr[-1], np.float32)
    _knn.minsum_rows(v_ptr, v_idx, np.ascontiguousarray(V.data, dtype=dtype), t_ptr, t_idx,
                     np.ascontiguousarray(T.data, dtype=dtype), rows, col_begin, col_end, indptr,
                     cols, dists, sort_rows, threads)
    return indptr, cols, dists


def _minsum_cut(V: sparse.csr_matrix, cutoff: float, num_threads, dtype=np.float64):
    """All rows of V against all columns, keeping d <= cutoff (float32): CSR arrays as _minsum,
    sorted by distance, in one pass of the kernel."""
    V = V.tocsr()
    V.eliminate_zeros()
    V.sort_indices()
    T = V.T.tocsr()
    T.sort_indices()
    return _knn.minsum_rows_cut(
        V.indptr.astype(np.int64), V.indices.astype(np.int64),
        np.ascontiguousarray(V.data, dtype=dtype), T.indptr.astype(np.int64),
        T.indices.astype(np.int64), np.ascontiguousarray(T.data, dtype=dtype),
        np.arange(V.shape[0], dtype=np.int64), cutoff, True, _threads(num_threads))


def _check_k(k1, k2):
    if int(k1) != k1 or k1 < 1:
        raise ValueError(f"k1 must be a positive integer, got {k1!r}")
    if int(k2) != k2 or k2 < 1:
        raise ValueError(f"k2 must be a positive integer, got {k2!r}")


def jaccard_distance(features, k1: int = 20, k2: int = 6, knn_columns: int | None = None, *,
                     knn_indices: np.ndarray | None = None, output: str = "sparse",
                     cutoff: float | None = None, num_threads: int | None = None):
    """SpCL's k-reciprocal Jaccard distance between all rows of `features` (N x D).

    knn_columns: how many neighbours the kNN search returns (SpCL, CDSM, AuxUSL: k1, the
    default; 3C: k1 + 1). The k-reciprocal windows are k1+1 and round(k1/2)+1 entries, capped
    at that many columns. knn_indices: a precomputed (N, >= knn_columns) neighbour list (for
    example from a GPU search), self first, ascending distance.
    Weights are softmax(-(2 - 2 x_i.x_j)) over each expanded set, as in SpCL (the features are
    expected L2-normalised there; raw features are used as given).

    output="sparse" (default): CSR float32, rows sorted by distance, diagonal stored (0);
    absent entries mean 1. output="dense": the N x N float32 array.

    cutoff (sparse output only): keep only the entries d <= cutoff; the others are never
    stored (they are dropped in the kernel as each row is computed, so memory follows what is
    kept). Pass the largest eps the caller's DBSCAN uses: DBSCAN's neighbourhood is d <= eps, so
    for every eps <= cutoff the labels are those of the full matrix. The comparison is made on
    the stored float32 distances against the smallest float32 >= cutoff, so an entry at eps is
    kept whether the caller compares in float32 or in float64. None (default): keep every pair
    that shares support.
    """
    _check_k(k1, k2)
    if output not in ("sparse", "dense"):
        raise ValueError(f"output must be 'sparse' or 'dense', got {output!r}")
    cutoff32 = _check_cutoff(cutoff, output)
    X = np.asarray(features)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D (N, dim) array, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or inf (a diverged model?)")
    N = X.shape[0]
    W = min(int(knn_columns or k1), N)
    if knn_indices is None:
        ranks, _ = knn(X, W, num_threads)
    else:
        ranks = np.asarray(knn_indices, dtype=np.int64)
        if ranks.ndim != 2 or ranks.shape[0] != N or ranks.shape[1] < W:
            raise ValueError(f"knn_indices must have shape ({N}, >= {W}), got {ranks.shape}")
        if ranks.min() < 0 or ranks.max() >= N:
            raise ValueError("knn_indices holds indices outside [0, N)")
        ranks = np.ascontiguousarray(ranks[:, :W])
    E = expanded_sets(ranks, k1)
    dots = np.empty(E.nnz, dtype=np.float64)
    _knn.pair_dots(X, E.indptr.astype(np.int64), E.indices.astype(np.int64), dots,
                   _threads(num_threads))
    V = _query_expansion(_row_softmax(E, -(2.0 - 2.0 * dots)), ranks, k2)
    return _distance_from_encoding(V, output, num_threads, cutoff32)


def _check_cutoff(cutoff, output):
    """None, or the float32 threshold: the smallest float32 at or above cutoff."""
    if cutoff is None:
        return None
    if output != "sparse":
        raise ValueError("cutoff applies to output='sparse' only (a dense matrix holds every entry)")
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float, np.integer, np.floating)):
        raise ValueError(f"cutoff must be None or a number >= 0, got {cutoff!r}")
    cutoff = float(cutoff)
    if not (cutoff >= 0.0) or not np.isfinite(cutoff):
        raise ValueError(f"cutoff must be None or a finite number >= 0, got {cutoff!r}")
    c32 = np.float32(cutoff)
    if float(c32) < cutoff:
        c32 = np.nextafter(c32, np.float32(np.inf))
    return float(c32)


def jaccard_from_encoding(V, *, output: str = "sparse", num_threads: int | None = None,
                          cutoff: float | None = None):
    """The Jaccard distance between the rows of a k-reciprocal encoding V (sparse N x N, each
    row a weight distribution): d_ij = 1 - S_ij / (2 - S_ij), S_ij = sum_c min(V_ic, V_jc),
    clipped at 0; what ``jaccard_distance`` computes from its own V.

    The arithmetic follows V's dtype: float64 (the default of ``jaccard_distance``; d rounded to
    float32 at the end) or float32, where every minimum, every addition (the columns of V in
    ascending order for each pair) and each operation of 1 - S / (2 - S) is rounded to float32,
    as SpCL-style code computes on dense float32 numpy arrays. Exact zeros of V are dropped.
    Output and ``cutoff`` (sparse only: keep the entries d <= cutoff) as ``jaccard_distance``.
    """
    if output not in ("sparse", "dense"):
        raise ValueError(f"output must be 'sparse' or 'dense', got {output!r}")
    V = sparse.csr_matrix(V, copy=True)  # the caller's matrix is left as it was
    if V.shape[0] != V.shape[1]:
        raise ValueError(f"V must be a square N x N matrix, got shape {V.shape}")
    if not np.isfinite(V.data).all():
        raise ValueError("V contains NaN or inf")
    return _distance_from_encoding(V, output, num_threads, _check_cutoff(cutoff, output))


def _distance_from_encoding(V: sparse.csr_matrix, output: str, num_threads, cutoff=None):
    N = V.shape[0]
    dtype = np.float32 if V.dtype == np.float32 else np.float64
    if cutoff is not None:
        indptr, cols, dists = _minsum_cut(V, cutoff, num_threads, dtype)
        if indptr[-1] < 2**31:
            indptr = indptr.astype(np.int32)
        return sparse.csr_matrix((dists, cols, indptr), shape=(N, N))
    indptr, cols, dists = _minsum(V, np.arange(N), 0, N, output == "sparse", num_threads, dtype)
    if output == "dense":
        J = np.ones((N, N), dtype=np.float32)
        J[np.repeat(np.arange(N), np.diff(indptr)), cols] = dists
        return J
    if indptr[-1] < 2**31:
        indptr = indptr.astype(np.int32)
    return sparse.csr_matrix((dists, cols, indptr), shape=(N, N))


class _Blocks:
    """Rows of the (Q+G) x (Q+G) matrix M = [[qq^T, qg], [qg^T, gg^T]] without assembling it.

    torchreid's re_ranking normalises the assembled matrix by column maxima and transposes it;
    for any input that equals M normalised by its row maxima, which is what is used here.
    """

    def __init__(self, qg, qq, gg, features, metric):
        self.features = features
        self.metric = metric
        if features is None:
            self.qg, self.qq, self.gg = qg, qq, gg
            self.Q, self.G = qg.shape
        else:
            self.Q = features[0].shape[0]
            self.G = features[1].shape[0]
            self.X = np.ascontiguousarray(np.concatenate(features), dtype=np.float32)
            self.sq = np.einsum("ij,ij->i", self.X, self.X)
        self.N = self.Q + self.G

    def rows(self, s, e):
        if self.features is not None:
            return distance_block(self.X[s:e], self.X, self.metric, self.sq)
        Q = self.Q
        parts = []
        if s < Q:
            a, b = s, min(e, Q)
            parts.append(np.concatenate([self.qq[:, a:b].T, self.qg[a:b]], axis=1))
        if e > Q:
            a, b = max(s, Q) - Q, e - Q
            parts.append(np.concatenate([self.qg[:, a:b].T, self.gg[:, a:b].T], axis=1))
        return np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)

    def pairs(self, i, j):
        if self.features is not None:
            out = np.empty(len(i), dtype=np.float32)
            step = 1 << 16
            for s in range(0, len(i), step):
                a, b = i[s:s + step], j[s:s + step]
                dot = np.einsum("ij,ij->i", self.X[a], self.X[b])
                if self.metric == "cosine":
                    v = 1.0 - dot / np.maximum(np.sqrt(self.sq[a] * self.sq[b]), 1e-12)
                else:
                    v = np.maximum(self.sq[a] + self.sq[b] - 2.0 * dot, 0.0)
                    if self.metric == "euclidean":
                        v = np.sqrt(v)
                out[s:s + step] = v
            return out
        Q = self.Q
        out = np.empty(len(i), dtype=np.float32)
        qi, qj = i < Q, j < Q
        m = qi & qj
        out[m] = self.qq[j[m], i[m]]
        m = qi & ~qj
        out[m] = self.qg[i[m], j[m] - Q]
        m = ~qi & qj
        out[m] = self.qg[j[m], i[m] - Q]
        m = ~qi & ~qj
        out[m] = self.gg[j[m] - Q, i[m] - Q]
        return out


def k_reciprocal_rerank(q_g_dist=None, q_q_dist=None, g_g_dist=None, k1: int = 20, k2: int = 6,
                        lambda_value: float = 0.3, *, query_features=None, gallery_features=None,
                        metric: str = "sqeuclidean", num_threads: int | None = None) -> np.ndarray:
    """Zhong et al.'s k-reciprocal re-ranking; returns the re-ranked Q x G distance (float32).

    Takes the three distance blocks as torchreid's ``re_ranking`` does (they are squared
    element-wise, as there: callers that pass squared Euclidean distances effectively rank by
    d^4, like the originals), or query and gallery features with a ``metric``. Memory: the
    output plus one block of rows and a sparse encoding; the (Q+G)^2 matrices of the original
    are never built.
    """
    _check_k(k1, k2)
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    if query_features is not None or gallery_features is not None:
        if query_features is None or gallery_features is None:
            raise ValueError("both query_features and gallery_features are required")
        qf = np.asarray(query_features, dtype=np.float32)
        gf = np.asarray(gallery_features, dtype=np.float32)
        if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1] or not len(qf) or not len(gf):
            raise ValueError(f"query/gallery features must be non-empty 2-D arrays of the same "
                             f"dimension, got {qf.shape} and {gf.shape}")
        if not (np.isfinite(qf).all() and np.isfinite(gf).all()):
            raise ValueError("features contain NaN or inf")
        M = _Blocks(None, None, None, (qf, gf), metric)
    else:
        qg, qq, gg = (np.asarray(a) if a is not None else None for a in (q_g_dist, q_q_dist, g_g_dist))
        if qg is None or qq is None or gg is None:
            raise ValueError("q_g_dist, q_q_dist and g_g_dist are all required")
        if qg.ndim != 2 or qg.shape[0] == 0 or qg.shape[1] == 0:
            raise ValueError(f"q_g_dist must be a non-empty Q x G matrix, got shape {qg.shape}")
        Q, G = qg.shape
        if qq.shape != (Q, Q):
            raise ValueError(f"q_q_dist must be {Q} x {Q} to match q_g_dist, got {qq.shape}")
        if gg.shape != (G, G):
            raise ValueError(f"g_g_dist must be {G} x {G} to match q_g_dist, got {gg.shape}")
        for name, a in (("q_g_dist", qg), ("q_q_dist", qq), ("g_g_dist", gg)):
            if not np.isfinite(a).all():
                raise ValueError(f"{name} contains NaN or inf")
        M = _Blocks(qg, qq, gg, None, metric)
    Q, N = M.Q, M.N
    W = min(k1 + 1, N)
    ranks = np.empty((N, W), dtype=np.int64)
    vals = np.empty((N, W), dtype=np.float32)
    filled = np.zeros(N, dtype=np.int64)
    row_max = np.empty(N, dtype=np.float64)
    rows = max(1, min(N, _BLOCK_BYTES // (4 * N)))
    for s in range(0, N, rows):
        e = min(N, s + rows)
        block = M.rows(s, e)
        np.square(block, out=block)
        row_max[s:e] = block.max(axis=1)
        _knn.topk_merge(block, _NO_ADD, 0, ranks[s:e], vals[s:e], filled[s:e],
                        _threads(num_threads))
    row_max = np.maximum(row_max, np.finfo(np.float32).tiny)

    E = expanded_sets(ranks, k1)
    er = np.repeat(np.arange(N), np.diff(E.indptr))
    d = M.pairs(er, E.indices.astype(np.int64)).astype(np.float64)
    V = _query_expansion(_row_softmax(E, -(d * d) / row_max[er]), ranks, k2)
    indptr, cols, dists = _minsum(V, np.arange(Q), Q, N, False, num_threads)

    final = np.empty((Q, N - Q), dtype=np.float32)
    for s in range(0, Q, rows):
        e = min(Q, s + rows)
        block = M.rows(s, e)[:, Q:]
        np.square(block, out=block)
        block /= row_max[s:e, None].astype(np.float32)
        final[s:e] = lambda_value * block + (1.0 - lambda_value)
    r = np.repeat(np.arange(Q), np.diff(indptr))
    final[r, cols - Q] += (1.0 - lambda_value) * (dists - 1.0)
    return final
