"""The merge criterion on hand-made features (hand-worked expectations) and against the literal
original algorithm."""
from __future__ import annotations

import numpy as np
import pytest

from buc.merge import MergeError, merge_clusters, merge_clusters_reference


def feats(*xs):
    """1-D features: squared distances are (x_i - x_j)^2."""
    return np.array(xs, dtype=np.float32)[:, None]


def test_closest_pairs_merge_first():
    # squared distances: (0,1) .01, (2,3) .0225, (1,2) .16, (0,2) .25, ...
    x = feats(0.0, 0.1, 0.5, 0.65, 2.0)
    r = merge_clusters(x, np.arange(5), 2, size_penalty=0.0)
    assert r.pairs == [(0, 1), (2, 3)]
    assert r.labels.tolist() == [0, 0, 1, 1, 2]
    assert (r.num_before, r.num_after) == (5, 3)
    r = merge_clusters(x, np.arange(5), 3, size_penalty=0.0)
    assert r.pairs == [(0, 1), (2, 3), (1, 2)]           # (1,2) joins the two new clusters
    assert r.labels.tolist() == [0, 0, 0, 0, 1]
    assert r.keys == pytest.approx([0.01, 0.0225, 0.16], abs=1e-6)


def test_size_penalty_changes_the_choice():
    # cluster 0 = {0,1,2} (size 3), 1 = {3}, 2 = {4}
    # (2,3): d = 0.2^2 = .04,   sizes 3+1 -> key .04 + 4*lambda
    # (3,4): d = 0.35^2 = .1225, sizes 1+1 -> key .1225 + 2*lambda
    x = feats(0.0, 0.05, 0.1, 0.3, 0.65)
    labels = np.array([0, 0, 0, 1, 2])
    r = merge_clusters(x, labels, 1, size_penalty=0.0)
    assert r.pairs == [(2, 3)] and r.labels.tolist() == [0, 0, 0, 0, 1]
    # lambda = .05: (2,3) .24 > (3,4) .2225 -> the two small clusters merge instead
    r = merge_clusters(x, labels, 1, size_penalty=0.05)
    assert r.pairs == [(3, 4)] and r.labels.tolist() == [0, 0, 0, 1, 1]
    assert r.keys == pytest.approx([0.2225], abs=1e-6)
    # break-even lambda = (.1225 - .04) / 2 = .04125: just below it, (2,3) still wins
    assert merge_clusters(x, labels, 1, size_penalty=0.04).pairs == [(2, 3)]


def test_pairs_inside_one_cluster_are_skipped_and_merges_are_transitive():
    # ascending: (1,2) .0025, (0,1) .01, (0,2) .0225 (same cluster by then), (3,4) .09
    x = feats(0.0, 0.1, 0.15, 5.0, 5.3)
    r = merge_clusters(x, np.arange(5), 3, size_penalty=0.0)
    assert r.pairs == [(1, 2), (0, 1), (3, 4)]
    assert r.labels.tolist() == [0, 0, 0, 1, 1]


def test_same_label_pairs_never_count_and_labels_are_reindexed_in_old_order():
    # old labels 0..3; samples 0 and 4 already share label 0 (distance 0 between them)
    x = feats(0.0, 3.0, 3.1, 9.0, 0.0)
    labels = np.array([0, 1, 2, 3, 0])
    r = merge_clusters(x, labels, 1, size_penalty=0.0)
    assert r.pairs == [(1, 2)]
    assert r.labels.tolist() == [0, 1, 1, 2, 0]   # old 0 -> 0, {1,2} -> 1, old 3 -> 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_merge_equals_the_literal_original(seed):
    rng = np.random.default_rng(seed)
    n = 40
    x = rng.normal(size=(n, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.arange(n)
    for m in (5, 9, 7):                        # three rounds, labels carried over
        ref = merge_clusters_reference(x, labels, m, size_penalty=0.01)
        fast = merge_clusters(x, labels, m, size_penalty=0.01, block_rows=7, initial_k=m)
        assert fast.labels.tolist() == ref.tolist()
        assert fast.num_after == len(np.unique(labels)) - m
        labels = fast.labels


def test_merging_into_one_cluster_is_refused():
    x = feats(0.0, 1.0, 2.0, 3.0)
    with pytest.raises(MergeError, match="one cluster"):
        merge_clusters(x, np.arange(4), 3, size_penalty=0.0)   # 4 - 3 = 1 cluster left
    with pytest.raises(MergeError, match="nothing to merge"):
        merge_clusters(x, np.arange(4), 0, size_penalty=0.0)
    assert merge_clusters(x, np.arange(4), 2, size_penalty=0.0).num_after == 2


def test_bad_features_and_labels():
    with pytest.raises(ValueError, match="NaN"):
        merge_clusters(feats(0.0, np.nan, 1.0, 2.0), np.arange(4), 1, 0.0)
    with pytest.raises(ValueError, match="0..C-1"):
        merge_clusters(feats(0.0, 1.0, 2.0, 3.0), np.array([0, 2, 2, 3]), 1, 0.0)
