"""jaccard_distance(..., cutoff=): only the entries DBSCAN can use are kept, dropped in the kernel;
labels identical to the full sparse output for every eps <= cutoff."""
import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import DBSCAN

from common_eval import jaccard_distance


def clustered(n, per_cluster, dim=32, noise=0.9, seed=0):
    """Clusters smaller than k1, as in real re-ID data (Market: ~17 images per identity)."""
    rng = np.random.default_rng(seed)
    ids = -(-n // per_cluster)
    labels = np.repeat(np.arange(ids), per_cluster)[:n]
    X = rng.normal(size=(ids, dim))[labels] + noise * rng.normal(size=(n, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def kept_part(J, cutoff):
    """The entries of the full output with d <= cutoff (float32), in the full output's order."""
    keep = J.data <= np.float32(cutoff)
    counts = np.add.reduceat(keep, J.indptr[:-1]) if J.nnz else np.zeros(J.shape[0], int)
    counts[np.diff(J.indptr) == 0] = 0
    indptr = np.r_[0, np.cumsum(counts)]
    return indptr, J.indices[keep], J.data[keep]


@pytest.mark.parametrize("n, per_cluster, k1, seed", [
    (240, 12, 20, 0), (700, 12, 30, 1), (1200, 8, 30, 2), (900, 40, 20, 3)])
def test_labels_identical_and_entries_exactly_the_kept_part(n, per_cluster, k1, seed):
    X = clustered(n, per_cluster, seed=seed)
    full = jaccard_distance(X, k1, 6)
    for cutoff in (0.5, 0.6, 0.7):
        cut = jaccard_distance(X, k1, 6, cutoff=cutoff, num_threads=2)
        indptr, cols, data = kept_part(full, cutoff)
        np.testing.assert_array_equal(cut.indptr, indptr)
        np.testing.assert_array_equal(cut.indices, cols)
        np.testing.assert_array_equal(cut.data, data)
        if per_cluster < k1:  # the full output is nearly dense; what is kept is a small part
            assert cut.nnz < full.nnz / 4
        for eps in sorted({0.4, 0.5, 0.55, cutoff}):
            if eps > cutoff:
                continue
            for min_samples in (2, 4):
                a = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(full)
                b = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(cut)
                np.testing.assert_array_equal(a.labels_, b.labels_)
                np.testing.assert_array_equal(a.core_sample_indices_, b.core_sample_indices_)


def test_entry_at_exactly_the_cutoff_is_kept():
    # DBSCAN's neighbourhood is d <= eps: a pair at exactly eps must survive cutoff = eps,
    # whether eps is compared in float32 or float64
    X = clustered(300, 12, seed=5)
    full = jaccard_distance(X, 20, 6)
    values = full.data[(full.data > 0.2) & (full.data < 0.9)]
    d = float(values[len(values) // 2])
    for cutoff in (d, np.float32(d), np.nextafter(d, 0.0)):
        cut = jaccard_distance(X, 20, 6, cutoff=cutoff)
        assert np.sum(cut.data == np.float32(d)) == np.sum(full.data == np.float32(d))
        a = DBSCAN(eps=d, min_samples=3, metric="precomputed").fit(full).labels_
        b = DBSCAN(eps=d, min_samples=3, metric="precomputed").fit(cut).labels_
        np.testing.assert_array_equal(a, b)


def test_threads_knn_columns_and_large_cutoff():
    X = clustered(500, 12, seed=6)
    a = jaccard_distance(X, 20, 6, knn_columns=21, cutoff=0.6, num_threads=1)
    b = jaccard_distance(X, 20, 6, knn_columns=21, cutoff=0.6, num_threads=2)
    assert (a != b).nnz == 0 and np.array_equal(a.indices, b.indices)
    full = jaccard_distance(X, 20, 6)
    every = jaccard_distance(X, 20, 6, cutoff=1.0)  # d <= 1 always: nothing dropped
    assert np.array_equal(every.indptr, full.indptr)
    assert np.array_equal(every.indices, full.indices) and np.array_equal(every.data, full.data)
    assert isinstance(every, sparse.csr_matrix) and every.dtype == np.float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(cutoff=-0.1), "cutoff"),
    (dict(cutoff=float("nan")), "cutoff"),
    (dict(cutoff="0.6"), "cutoff"),
    (dict(cutoff=True), "cutoff"),
    (dict(cutoff=0.6, output="dense"), "sparse"),
])
def test_bad_cutoff(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jaccard_distance(np.eye(5, dtype=np.float32), 3, 2, **kwargs)
