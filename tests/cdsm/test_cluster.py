"""Jaccard + DBSCAN: the sparse distance gives the dense result; no cluster is a clear error."""
import numpy as np
import pytest

from cdsm.cluster import cluster_features, run_dbscan
from cdsm.errors import NoClusterError
from common_eval import jaccard_distance


def blobs(seed=0, ids=8, per=6, dim=16, noise=0.15):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    x = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(ids * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(ids), per)


@pytest.mark.parametrize("eps", [0.3, 0.5, 0.7])
def test_sparse_jaccard_dbscan_equals_dense(eps):
    x, _ = blobs()
    sparse_labels, sparse_core = run_dbscan(jaccard_distance(x, k1=10, k2=3), eps, 4)
    dense_labels, dense_core = run_dbscan(jaccard_distance(x, k1=10, k2=3, output="dense"), eps, 4)
    assert np.array_equal(sparse_labels, dense_labels) and np.array_equal(sparse_core, dense_core)


def test_three_radii_and_core_samples():
    x, truth = blobs()
    c = cluster_features(x, eps=0.5, min_samples=4, k1=10, k2=3, eps_gap=0.02)
    assert c.num_clusters == 8 and c.num_outliers == 0
    assert c.labels_tight is not None and c.labels_loose is not None
    # clusters follow the identities here
    for k in range(8):
        assert len(set(c.labels[truth == k])) == 1
    assert np.all(np.diff(c.core_indices) > 0)
    only = cluster_features(x, eps=0.5, min_samples=4, k1=10, k2=3, eps_gap=None)
    assert only.labels_tight is None and np.array_equal(only.labels, c.labels)


def test_no_cluster_is_a_clear_error():
    x, _ = blobs()
    with pytest.raises(NoClusterError) as err:
        cluster_features(x, eps=0.5, min_samples=100, k1=10, k2=3, epoch=3)
    msg = str(err.value)
    assert "found no cluster among the 48 training images at epoch 3" in msg
    assert "--eps" in msg and "--min-samples" in msg


def test_eps_range_is_checked():
    x, _ = blobs()
    with pytest.raises(ValueError, match="below 1"):
        cluster_features(x, eps=0.99, eps_gap=0.02)


@pytest.mark.parametrize("seed, ids, per", [(0, 8, 6), (1, 20, 3), (2, 12, 10)])
def test_cutoff_keeps_the_labels_of_the_full_matrix(seed, ids, per, monkeypatch):
    # cluster_features keeps only Jaccard entries <= eps + gap: the three clusterings are those of
    # the full sparse matrix (small clusters, k1 above the cluster size: most entries are dropped)
    x, _ = blobs(seed=seed, ids=ids, per=per, noise=0.3)
    full = jaccard_distance(x, k1=10, k2=3)
    c = cluster_features(x, eps=0.5, min_samples=2, k1=10, k2=3, eps_gap=0.02)
    for eps, got in ((0.5, c.labels), (0.48, c.labels_tight), (0.52, c.labels_loose)):
        assert np.array_equal(got, run_dbscan(full, eps, 2)[0])
    assert np.array_equal(c.core_indices, run_dbscan(full, 0.5, 2)[1])
    kept = jaccard_distance(x, k1=10, k2=3, cutoff=0.52).nnz
    assert kept < full.nnz if per < 10 else kept <= full.nnz
    # and cluster_features really asks for the cutoff (the labels alone cannot show it)
    import cdsm.cluster.dbscan as module
    asked = []

    def spy(*args, **kwargs):
        asked.append(kwargs.get("cutoff"))
        return jaccard_distance(*args, **kwargs)
    monkeypatch.setattr(module, "jaccard_distance", spy)
    cluster_features(x, eps=0.5, min_samples=2, k1=10, k2=3, eps_gap=0.02)
    assert asked[0] == pytest.approx(0.52)
