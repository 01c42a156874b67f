"""HDC: harmonic discrepancy clustering (3C, ``CCC/HDC/HDC_fix2.py``; spec 3.3).

A k-means-like clustering with a fixed K in which the discrepancy of a sample to a cluster is
weighted by how confidently the cluster's members belong to it, and peripheral samples are
rejected as outliers. Inputs: X (N x d, L2-normalised features) and an N x N distance J (the
k-reciprocal Jaccard distance; with ``--no-jaccard`` the normalised feature distance).

Step 0   A = clip(1 - exp(-J), 0, 1), NaN -> 1 (pairwise discrepancy, in [0, 0.632] for J in [0, 1])
Step 1   initial centroids and labels (``init``: "k-means++2", "k-means++" or "random")
Step 2   up to ``max_iter`` times, with the labels y and centroids c of the previous iteration:
  2.1 membership of each sample in its own cluster: m_k = 1 - clip(1 - exp(-5 D(x_k, c_{y_k})))
      with D the similarity distance ("Euler cosine") normalised by its maximum over N x K
      (the N x K distance is computed for that maximum; the transform only for the N own values)
  2.2 HD(i, j) = A[i, k*], k* = first argmax over members k of j of A_ik m_k / (A_ik + m_k)
      (an empty cluster: k* = 0)                                    [compiled kernel, OpenMP]
  2.3 y_i = argmax_j (sum_j' HD(i, j') - HD(i, j)) / (K - 1) (= argmin_j HD, first index on
      ties), hd_i = HD(i, y_i), confidence mem_i = that mean HD to the other clusters
  2.4 empty clusters get the lowest-confidence samples (members of clusters with fewer than
      5 members are protected), repeated until none is empty      [compiled kernel]
  2.5 POD: in every cluster with >= 2 members, hd_i > mean + n_sigma * std (ddof 1) -> -1
      (a fixed ``threshold`` t instead marks every hd_i > t)
  2.6 centroids = mean of the POD members (L2-normalised only with ``normalize_centroid``)
  2.7 stop if the squared centroid shift is 0; from iteration ``min_iter`` on, stop once the
      shift has not improved on its best for more than ``n_tol`` iterations
Output   labels = the POD labels (with -1) if ``outlier`` else the full labels; the last centroids.

Float32 and numpy's reductions throughout, as the original; the only change in behaviour is the
seeded initialisation and a defined order among the samples moved into empty clusters.

J may also be a sparse matrix (the Jaccard distance as ``common_eval.jaccard_distance`` returns
it: a pair not stored has distance 1). A then keeps the stored pairs and one value for every other
pair, 1 - exp(-1); step 2.2 ranks each cluster's members once by their h against that value and,
for each row, corrects only the clusters that row stores members of: O(N K + stored pairs) per
iteration and memory that grows with N K + stored pairs instead of N^2. The labels, centroids
and every other output are identical to those of the dense N x N matrix with 1 in the pairs not
stored (tests/ccc/test_hdc.py keeps the dense version as its reference).
"""
from __future__ import annotations

import logging

import numpy as np
from scipy import sparse

from ..errors import ClusteringError
from .distances import SIMILARITIES, EulerMap, euler_cosine_row_blocks, get_distances
from .init import INITS, kmeans_plusplus, kmeans_plusplus2, random_init

try:
    from . import _hdc
except ImportError as exc:  # no silent Python fallback
    raise ImportError(
        "ccc's compiled HDC kernels (ccc.hdc._hdc) are missing or stale. Build them with "
        "'./reproduce.sh setup', or from the repository root with 'pip install --no-deps "
        "--no-build-isolation --config-settings editable_mode=compat -e ccc'; there is no Python "
        "fallback.") from exc

log = logging.getLogger(__name__)

SMALL_CLUSTER = 5   # relocation protects members of clusters smaller than this


def _threads(num_threads) -> int:
    import os

    return int(num_threads or os.cpu_count() or 1)


# ------------------------------------------------------------------------------- the pieces
class SparseDiscrepancy:
    """The discrepancy A of a sparse distance J: the stored pairs in CSR form (``indptr``,
    ``indices``, ``data`` = A of the stored J) and ``absent`` = A of J = 1, the value of every
    pair not stored. Built by ``discrepancy_matrix`` from a scipy sparse J."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, absent: np.float32, n: int):
        self.indptr, self.indices, self.data, self.absent = indptr, indices, data, np.float32(absent)
        self.shape = (n, n)

    def toarray(self) -> np.ndarray:
        """The dense N x N A (for tests and small N)."""
        A = np.full(self.shape, self.absent, dtype=np.float32)
        A[np.repeat(np.arange(self.shape[0]), np.diff(self.indptr)), self.indices] = self.data
        return A


def _discrepancy(A: np.ndarray) -> np.ndarray:
    """In place on a float32 array holding J: A = clip(1 - exp(-J), 0, 1) with NaN -> 1."""
    np.negative(A, out=A)
    np.exp(A, out=A)
    np.subtract(np.float32(1), A, out=A)
    A[np.isnan(A)] = 1.0
    np.clip(A, 0.0, 1.0, out=A)
    return A


def sparse_distance(mat_dist, inplace: bool = False) -> sparse.csr_matrix:
    """A square sparse distance as a float32 CSR with each pair stored at most once (ValueError
    for a pair stored twice: the dense matrix it stands for would be ambiguous)."""
    J = sparse.csr_matrix(mat_dist, dtype=np.float32, copy=not inplace)
    if J.shape[0] != J.shape[1]:
        raise ValueError(f"the sparse distance must be square, got {J.shape}")
    J.sort_indices()
    if not J.has_canonical_format:
        raise ValueError("the sparse distance stores a pair more than once")
    return J


def discrepancy_matrix(mat_dist, inplace: bool = False):
    """A = clip(1 - exp(-J), 0, 1) with NaN -> 1 (float32); ``inplace`` reuses J's memory.

    A scipy sparse J (absent pairs = distance 1) gives a ``SparseDiscrepancy``.
    """
    if sparse.issparse(mat_dist):
        J = sparse_distance(mat_dist, inplace)       # a copy unless inplace
        absent = _discrepancy(np.ones(1, dtype=np.float32))[0]
        return SparseDiscrepancy(J.indptr.astype(np.int64), J.indices.astype(np.int32, copy=False),
                                 _discrepancy(J.data), absent, J.shape[0])
    J = np.asarray(mat_dist)
    if inplace and J.dtype == np.float32 and J.flags.c_contiguous and J.flags.writeable:
        A = J
    else:
        A = np.array(J, dtype=np.float32, order="C")
    return _discrepancy(A)


def memberships(X, centroids, similarity: str = "Euler Cosine", x_map: EulerMap | None = None) -> np.ndarray:
    """N x K memberships 1 - clip(1 - exp(-5 D)), NaN -> 0 (the original: 1 - _hd_mat(X, C))."""
    d = get_distances(X, centroids, similarity, x_map=x_map)
    with np.errstate(invalid="ignore", over="ignore"):
        hd = 1 - np.exp(-5 * d)
    hd[np.isnan(hd)] = 1.0
    np.clip(hd, 0.0, 1.0, out=hd)
    return (1 - hd).astype(np.float32, copy=False)


def own_memberships(X, centroids, labels, similarity: str = "Euler Cosine",
                    x_map: EulerMap | None = None, block_rows: int = 4096) -> np.ndarray:
    """memberships(X, centroids)[i, labels[i]] for every i (step 2.1), the same float32 values:
    every distance is still computed for the maximum (the normalisation; "Euler Cosine" block
    of rows after block), but the rest of the transform runs on the N values HDC reads."""
    n = len(labels)
    labels = np.asarray(labels)
    if similarity == "Euler Cosine":
        own = np.empty(n, dtype=np.float32)
        maxima = []
        for a, d in euler_cosine_row_blocks(X, centroids, x_map=x_map, block_rows=block_rows):
            own[a:a + len(d)] = d[np.arange(len(d)), labels[a:a + len(d)]]
            maxima.append(d.max())
        d_max = np.max(np.array(maxima, dtype=np.float32))      # NaN if any distance is NaN
    else:
        d = get_distances(X, centroids, similarity, norm=False, x_map=x_map)
        own = d[np.arange(n), labels]
        d_max = d.max()
        del d
    with np.errstate(invalid="ignore", divide="ignore"):
        own = own / 2 if similarity == "Cosine" else own / d_max
    with np.errstate(invalid="ignore", over="ignore"):
        hd = 1 - np.exp(-5 * own)
    hd[np.isnan(hd)] = 1.0
    np.clip(hd, 0.0, 1.0, out=hd)
    return (1 - hd).astype(np.float32, copy=False)


def harmonic_discrepancy(A: np.ndarray, m_own: np.ndarray, labels: np.ndarray, n_clusters: int,
                         num_threads: int | None = None, members: bool = True):
    """(HD, k*): N x K harmonic discrepancies and the member each one was taken from (step 2.2);
    with ``members=False`` k* is not kept (None: an N x K int32 array less).

    A: the dense N x N discrepancy or a ``SparseDiscrepancy`` (same result).
    """
    if not isinstance(A, SparseDiscrepancy):
        A = np.ascontiguousarray(A, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    m_own = np.ascontiguousarray(m_own, dtype=np.float32)
    N = A.shape[0]
    if A.shape != (N, N) or labels.shape != (N,) or m_own.shape != (N,):
        raise ValueError(f"harmonic_discrepancy: A must be N x N and labels, m of length N; got "
                         f"{A.shape}, {labels.shape}, {m_own.shape}")
    if labels.max(initial=-1) >= n_clusters:
        raise ValueError(f"labels must be < n_clusters = {n_clusters}")
    hd = np.empty((N, n_clusters), dtype=np.float32)
    arg = np.empty((N if members else 0, n_clusters), dtype=np.int32)
    if isinstance(A, SparseDiscrepancy):
        # each cluster's members by decreasing h(absent, m_k), then increasing k; a NaN h never wins
        h_absent = _hdc.absent_harmonic(A.absent, m_own)
        kept = np.flatnonzero((labels >= 0) & (h_absent > -1))
        order = kept[np.lexsort((kept, -h_absent[kept], labels[kept]))].astype(np.int32)
        bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1)).astype(np.int64)
        _hdc.harmonic_discrepancy_sparse(A.indptr, A.indices, A.data, A.absent, m_own, labels, h_absent,
                                         order, bounds, hd, arg, _threads(num_threads))
    else:
        _hdc.harmonic_discrepancy(A, m_own, labels, hd, arg, _threads(num_threads))
    return hd, (arg if members else None)


def assign_labels(hd: np.ndarray, block_rows: int = 4096):
    """Step 2.3: (labels, hd_i, confidence_i), as the original computes them (float32).

    The N x K confidences (sum - HD) / (K - 1) are formed block of rows after block: each row's
    sum and values are the same, and no second N x K array is held beside HD."""
    n, K = hd.shape
    labels = np.empty(n, dtype=np.int32)
    confidence = np.empty(n, dtype=np.float32)
    for a in range(0, n, block_rows):
        block = hd[a:a + block_rows]
        mem = np.subtract(block.sum(axis=1, keepdims=True), block)
        np.divide(mem, K - 1, out=mem)
        own = mem.argmax(axis=1)
        labels[a:a + len(block)] = own
        confidence[a:a + len(block)] = mem[np.arange(len(block)), own]
    return labels, hd[np.arange(n), labels].copy(), confidence


def relocate_empty_clusters(hd: np.ndarray, labels_mem: np.ndarray, labels: np.ndarray, labels_hd: np.ndarray,
                            max_passes: int | None = None) -> int:
    """Step 2.4, in place on labels / labels_hd; returns the number of passes that moved samples.

    The original repeats the pass while a cluster is still empty (with K close to N it can loop
    forever); here ``max_passes`` (default N) passes end in a ClusteringError.
    """
    n, K = hd.shape
    counts = np.zeros(K, dtype=np.int64)
    hd = np.ascontiguousarray(hd, dtype=np.float32)
    labels_mem = np.ascontiguousarray(labels_mem, dtype=np.float32)
    limit = n if max_passes is None else max_passes
    passes = 0
    while True:
        moved = _hdc.relocate_pass(hd, labels_mem, labels, labels_hd, counts, SMALL_CLUSTER)
        if moved == 0 or (counts > 0).all():
            return passes + (moved > 0)
        passes += 1
        if passes >= limit:
            raise ClusteringError(
                f"HDC could not give each of its {K} clusters a sample after {passes} relocation "
                f"passes ({n} samples): lower --num-clusters")


def peripheral_object_detection(labels: np.ndarray, labels_hd: np.ndarray, n_clusters: int,
                                n_sigma: float = 1.0, threshold: float | None = None) -> np.ndarray:
    """Step 2.5: the POD labels (-1 = peripheral)."""
    pod = labels.copy()
    if threshold is not None:
        pod[labels_hd > threshold] = -1
        return pod
    order = np.argsort(labels, kind="stable")        # members of each cluster in index order
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    for j in range(n_clusters):
        a, b = bounds[j], bounds[j + 1]
        if b - a < 2:
            continue
        members = order[a:b]
        vals = labels_hd[members]
        limit = vals.mean() + n_sigma * vals.std(ddof=1)
        pod[members[vals > limit]] = -1
    return pod


def cluster_centroids(X: np.ndarray, labels: np.ndarray, n_clusters: int,
                      normalize: bool = False) -> np.ndarray:
    """Step 2.6: the mean of each cluster's members (float32; NaN for a cluster without members)."""
    X = np.asarray(X, dtype=np.float32)
    out = np.full((n_clusters, X.shape[1]), np.nan, dtype=np.float32)
    kept = np.flatnonzero(labels >= 0)
    order = kept[np.argsort(labels[kept], kind="stable")]
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    for j in range(n_clusters):
        a, b = bounds[j], bounds[j + 1]
        if b > a:
            out[j] = X[order[a:b]].mean(axis=0)
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = out / np.linalg.norm(out, axis=1, keepdims=True)
    return out


# -------------------------------------------------------------------------------- the class
class HDC:
    """Harmonic discrepancy clustering (the original's defaults of ``HDC(...)``; 3C's ``main.py``
    passes max_iter 80, init "k-means++2", similarity "Euler Cosine").

    num_threads: OpenMP threads of the harmonic-discrepancy kernel (results do not depend on it).
    """

    def __init__(self, n_clusters: int = 8, max_iter: int = 100, min_iter: int = 10, init: str = "k-means++",
                 normalize_centroid: bool = False, similarity: str = "Euclidean", n_sigma: float = 1.0,
                 threshold: float | None = None, n_tol: int = 4, num_threads: int | None = None,
                 verbose: bool = False):
        if init not in INITS:
            raise ValueError(f"unknown HDC init {init!r}; valid: {', '.join(INITS)}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown HDC similarity {similarity!r}; valid: {', '.join(SIMILARITIES)}")
        self.n_clusters = n_clusters
        self.max_iter = max_iter
        self.min_iter = min_iter
        self.init = init
        self.normalize_centroid = normalize_centroid
        self.similarity = similarity
        self.n_sigma = n_sigma
        self.threshold = threshold
        self.n_tol = n_tol
        self.num_threads = num_threads
        self.verbose = verbose

    def check(self, n_samples: int) -> None:
        K = self.n_clusters
        if K < 2:
            raise ClusteringError(f"HDC needs at least 2 clusters (--num-clusters {K}): its "
                                  "confidence is a mean over the other K - 1 clusters")
        if K > n_samples:
            raise ClusteringError(f"--num-clusters {K} is larger than the number of training samples "
                                  f"({n_samples}): HDC cannot give every cluster a member; use at most "
                                  f"{n_samples} (3C uses about the number of identities)")

    def initialise(self, X, mat_dist, random_state):
        if self.init == "k-means++2":
            return kmeans_plusplus2(X, self.n_clusters, mat_dist, random_state)[:2]
        if self.init == "k-means++":
            return kmeans_plusplus(X, self.n_clusters, random_state, self.similarity)[:2]
        return random_init(X, self.n_clusters, random_state, self.normalize_centroid)[:2]

    def iterate(self, X, centroids, labels, A, x_map=None, members: bool = True):
        """One iteration (steps 2.1-2.6) from the previous labels and centroids.

        Returns a dict: labels (full), labels_hd, confidences, labels_pod, centroids, hd, members
        (k* of every HD entry; None with ``members=False``, as ``fit`` asks), relocations
        (passes that moved samples).
        """
        K = self.n_clusters
        m_own = own_memberships(X, centroids, labels, self.similarity, x_map)
        hd, members = harmonic_discrepancy(A, m_own, labels, K, self.num_threads, members)
        new_labels, labels_hd, labels_mem = assign_labels(hd)
        relocations = relocate_empty_clusters(hd, labels_mem, new_labels, labels_hd)
        pod = peripheral_object_detection(new_labels, labels_hd, K, self.n_sigma, self.threshold)
        with np.errstate(invalid="ignore"):
            new_centroids = cluster_centroids(X, pod, K, self.normalize_centroid)
        return {"labels": new_labels, "labels_hd": labels_hd, "confidences": labels_mem, "labels_pod": pod,
                "centroids": new_centroids, "hd": hd, "members": members, "memberships": m_own,
                "relocations": relocations}

    def fit(self, X, mat_dist=None, outlier: bool = True, random_state=None, inplace: bool = False):
        """Clusters X; ``mat_dist`` the N x N distance (None: the normalised similarity distance),
        dense or scipy sparse (a pair not stored has distance 1; same labels, memory N K + stored).

        random_state: an int seed or a numpy RandomState (None: unseeded, as the original).
        inplace: let step 0 overwrite ``mat_dist`` (saves an N x N copy at full scale).
        Sets labels_, cluster_centers_, labels_full_, labels_pod_, confidences_, hd_, n_iter_,
        shifts_, relocations_, nan_centroids_.
        """
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = X.shape[0]
        self.check(n)
        rs = random_state if isinstance(random_state,
                                        np.random.RandomState) else np.random.RandomState(random_state)
        x_map = EulerMap(X) if self.similarity == "Euler Cosine" else None
        if mat_dist is None:
            mat_dist = get_distances(X, X, self.similarity, x_map=x_map)
            inplace = True
        if mat_dist.shape != (n, n):
            raise ValueError(f"mat_dist must be {n} x {n}, got {mat_dist.shape}")
        if sparse.issparse(mat_dist):
            mat_dist = sparse_distance(mat_dist, inplace)
            inplace = True          # a float32 CSR of our own or the caller's, as allowed
        centroids, labels = self.initialise(X, mat_dist, rs)
        A = discrepancy_matrix(mat_dist, inplace=inplace)
        pod = labels
        best_shift, tol = 0xFFFFF, 0
        self.shifts_, self.relocations_, self.nan_centroids_ = [], 0, 0
        step = None
        for it in range(self.max_iter):
            old = centroids
            step = None        # the previous iteration's N x K arrays are not held beside the next ones
            step = self.iterate(X, centroids, labels, A, x_map, members=False)
            labels, pod, centroids = step["labels"], step["labels_pod"], step["centroids"]
            self.relocations_ += step["relocations"]
            with np.errstate(invalid="ignore"):
                shift = float(((old - centroids) ** 2).sum())
            self.shifts_.append(shift)
            if self.verbose:
                log.info(f"    HDC iteration {it}: centroid shift {shift:.6g}")
            if shift == 0:
                break
            if it >= self.min_iter:
                if shift < best_shift:
                    tol, best_shift = 0, shift
                elif tol < self.n_tol:
                    tol += 1
                else:
                    break
        self.n_iter_ = len(self.shifts_)
        self.nan_centroids_ = int(np.isnan(centroids).any(axis=1).sum())
        self.cluster_centers_ = centroids
        self.labels_full_ = labels
        self.labels_pod_ = pod
        self.labels_ = pod if outlier else labels
        self.confidences_ = step["confidences"] if step else None
        self.hd_ = step["labels_hd"] if step else None
        return self
