"""DBSCAN's Jaccard matrix keeps only the pairs within eps (issue 20): train.py asks
jaccard_distance(..., cutoff=--dbscan-eps); the pseudo-labels equal those of the full matrix, and
the no-cluster error still quotes the full matrix's neighbour distance."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import tiny_args

from ccc.cluster import dbscan_labels, jaccard_distance, neighbour_distance_hint
from ccc.errors import NoClusterError


def clustered(n, per_cluster=12, dim=64, noise=0.35, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // per_cluster + 1, dim))
    X = centres[np.arange(n) // per_cluster] + noise * rng.standard_normal((n, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n", [240, 900])
def test_cut_matrix_gives_the_full_labels(n):
    X = clustered(n, seed=n)
    full = jaccard_distance(X, k1=30, k2=6, num_threads=2)
    for eps in (0.5, 0.6):
        cut = jaccard_distance(X, k1=30, k2=6, num_threads=2, cutoff=eps)
        assert cut.data.max() <= eps and cut.nnz < full.nnz
        want = dbscan_labels(full, eps, 4)
        assert want.max() > 0
        np.testing.assert_array_equal(dbscan_labels(cut, eps, 4), want)


def test_train_py_passes_its_eps(train_script, tmp_path, monkeypatch):
    args = train_script.parse_args(tiny_args(tmp_path, tmp_path / "logs", cluster="dbscan"))
    args.jaccard_k1, args.jaccard_k2, args.cluster_min_instances = 30, 6, 4
    X = clustered(360, seed=1)
    seen = []
    real = train_script.dbscan_labels

    def spy(dist, *a, **kw):
        seen.append(dist)
        return real(dist, *a, **kw)

    monkeypatch.setattr(train_script, "dbscan_labels", spy)
    labels, _, info = train_script.pseudo_labels(X, args, 0)
    assert info["method"] == "DBSCAN" and seen[0].data.max() <= args.dbscan_eps == 0.5
    np.testing.assert_array_equal(labels, dbscan_labels(jaccard_distance(X, 30, 6), 0.5, 4))
    args.cluster_min_instances = 200                       # no cluster: the hint reads the full matrix
    with pytest.raises(NoClusterError) as err:
        train_script.pseudo_labels(X, args, 0)
    hint = neighbour_distance_hint(jaccard_distance(X, 30, 6), 200)
    assert hint > 0.5 and f"neighbour is {hint:.3f}" in str(err.value)
