"""Once eps is known (every epoch after the first), the Jaccard distance keeps only the pairs
within eps: the stored entries are exactly the full distance's entries <= eps (same float32
values), and DBSCAN gives the same labels, at several sizes and at an eps equal to a stored value."""
import numpy as np
import pytest
from scipy import sparse

from auxusl.cluster import ClusterState, adaptive_eps, clustering_distance, run_clustering
from common_eval.jaccard import jaccard_from_encoding


def clustered(seed, ids, per_id, dim=128):
    rng = np.random.default_rng(seed)
    centres = rng.gamma(2.0, 0.5, (ids, dim))
    X = np.repeat(centres, per_id, axis=0) + rng.normal(0, 0.8, (ids * per_id, dim))
    return np.maximum(X, 0).astype(np.float32)


def triples(D):
    """(row, column, value) of every stored entry, explicit zeros included, in row-major order."""
    D = sparse.csr_matrix(D)
    D.sort_indices()
    return np.repeat(np.arange(D.shape[0]), np.diff(D.indptr)), D.indices, D.data


@pytest.mark.parametrize("seed, ids, per_id", [(0, 40, 6), (1, 90, 9), (2, 150, 4)])
def test_cut_distance_and_labels_equal_the_full(seed, ids, per_id):
    X = clustered(seed, ids, per_id)
    full = clustering_distance(X, 30, 6)
    r, c, v = triples(full)
    eps = adaptive_eps(full, 1.6e-3)
    for cut in (eps, float(v[v > 0].min())):   # the adaptive eps; the smallest stored positive value
        D = clustering_distance(X, 30, 6, cutoff=cut)
        keep = v <= np.float32(cut)
        assert 0 < keep.sum() < len(v)
        for got, want in zip(triples(D), (r[keep], c[keep], v[keep])):
            assert np.array_equal(got, want)
        a = run_clustering(full, ClusterState(cut, 4))
        b = run_clustering(D, ClusterState(cut, 4))
        assert np.array_equal(a, b) and a.max() >= 1


def test_cutoff_is_sparse_only():
    V = sparse.identity(3, dtype=np.float32, format="csr")
    with pytest.raises(ValueError, match="output='sparse' only"):
        jaccard_from_encoding(V, output="dense", cutoff=0.5)
    with pytest.raises(ValueError, match="finite number >= 0"):
        jaccard_from_encoding(V, cutoff=-1.0)
