"""k-means + reliable selection (spec A6) on hand-made feature sets with hand-worked answers."""
import numpy as np
import pytest

from pul.selection import Clustering, SelectionError, kmeans, one_hot, select_reliable


def clustering_of(features, labels):
    """A Clustering with centroids = cluster means (what k-means converges to for these labels)."""
    f = np.asarray(features, float)
    labels = np.asarray(labels)
    cents = np.stack([f[labels == k].mean(axis=0) for k in range(labels.max() + 1)])
    dist = np.linalg.norm(f[:, None, :] - cents[None], axis=2)
    return Clustering(centroids=cents, labels=labels, distances=dist, inertia=0.0, n_iter=1)


# Hand-made set: cluster 0 = images 0-3 along the x axis (image 3 points along the diagonal),
# cluster 1 = images 4-6 near the y axis. Centroids (1.75, 0.5) and (1/3, 11/3); the images nearest
# to them (the "centre images") are 1 = (2, 0) and 5 = (1, 4).
F = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0], [1.0, 1.0], [0.0, 2.0], [1.0, 4.0], [0.0, 5.0]])
LABELS = np.array([0, 0, 0, 0, 1, 1, 1])
S17, S10, S2 = np.sqrt(17), np.sqrt(10), np.sqrt(2)
# cosine to centre image 1 (direction e_x) and to centre image 5 (direction (1, 4)/sqrt 17)
TO_C0 = np.array([1, 1, 3 / S10, 1 / S2, 0, 1 / S17, 0])
TO_C1 = np.array([1 / S17, 1 / S17, 7 / (S10 * S17), 5 / (S2 * S17), 4 / S17, 1, 4 / S17])
# cosine to the own centroid (paper rule)
N0, N1 = np.hypot(1.75, 0.5), np.hypot(1 / 3, 11 / 3)
TO_OWN = np.array([1.75 / N0, 1.75 / N0, 5.75 / (S10 * N0), 2.25 / (S2 * N0),
                   (22 / 3) / (2 * N1), 15 / (S17 * N1), (55 / 3) / (5 * N1)])


def test_hand_worked_similarities():
    cl = clustering_of(F, LABELS)
    np.testing.assert_allclose(cl.centroids, [[1.75, 0.5], [1 / 3, 11 / 3]])
    code = select_reliable(F, cl, lam=0.5, rule="code")
    assert list(code.centre_images) == [1, 5]
    np.testing.assert_allclose(code.similarity, np.maximum(TO_C0, TO_C1))
    paper = select_reliable(F, cl, lam=0.5, rule="paper")
    np.testing.assert_allclose(paper.similarity, TO_OWN)


def test_code_rule_any_centre_image_own_label():
    cl = clustering_of(F, LABELS)
    # lambda 0.85: image 3 (cluster 0) passes only through the centre image of cluster 1
    # (cos 5/sqrt 34 = 0.857; to its own centre image 0.707) and keeps its own label 0
    sel = select_reliable(F, cl, lam=0.85, rule="code")
    assert list(sel.indices) == [0, 1, 2, 3, 4, 5, 6]
    assert list(sel.labels) == [0, 0, 0, 0, 1, 1, 1]
    # lambda 0.95: image 2 (3/sqrt 10 = 0.949) and image 3 fall out
    sel = select_reliable(F, cl, lam=0.95, rule="code")
    assert list(sel.indices) == [0, 1, 4, 5, 6]
    assert list(sel.labels) == [0, 0, 1, 1, 1]
    assert sel.num_selected == 5 and sel.num_clusters_used == 2


def test_paper_rule_own_centroid():
    cl = clustering_of(F, LABELS)
    # own-centroid cosines: 0.962 0.962 0.999 0.874 | 0.996 0.988 0.996
    sel = select_reliable(F, cl, lam=0.95, rule="paper")
    assert list(sel.indices) == [0, 1, 2, 4, 5, 6]
    assert list(sel.labels) == [0, 0, 0, 1, 1, 1]
    sel = select_reliable(F, cl, lam=0.97, rule="paper")
    assert list(sel.indices) == [2, 4, 5, 6]
    assert list(sel.labels) == [0, 1, 1, 1]


def test_every_centre_image_is_reliable_under_the_code_rule():
    cl = clustering_of(F, LABELS)
    sel = select_reliable(F, cl, lam=0.99, rule="code")
    assert set(sel.centre_images) <= set(sel.indices)
    assert list(sel.indices) == [0, 1, 5]   # image 0 is parallel to centre image 1


def test_strict_threshold_and_empty_selection_is_an_error():
    cl = clustering_of(F, LABELS)
    # lambda 1.0: only similarity > 1 would pass; the centre images have exactly 1.0
    with pytest.raises(SelectionError, match="no reliable image.*lower --lambda"):
        select_reliable(F, cl, lam=1.0, rule="code")
    with pytest.raises(SelectionError, match="unknown selection rule"):
        select_reliable(F, cl, lam=0.5, rule="nearest")


def test_kmeans_recovers_obvious_clusters_and_k_errors():
    rng = np.random.default_rng(0)
    centres = np.array([[10, 0, 0], [0, 10, 0], [0, 0, 10]], float)
    f = np.concatenate([c + 0.1 * rng.standard_normal((5, 3)) for c in centres])
    cl = kmeans(f, 3, seed=0)
    for k in range(3):
        assert len(set(cl.labels[5 * k:5 * k + 5])) == 1
    assert len(set(cl.labels)) == 3
    assert cl.distances.shape == (15, 3)
    expect = np.linalg.norm(f[:, None] - cl.centroids[None], axis=2)
    np.testing.assert_allclose(cl.distances, expect, rtol=1e-6)
    assert kmeans(f, 15, seed=0).labels.max() == 14        # K = N is allowed
    with pytest.raises(SelectionError, match="K = 16 clusters but only 15 images"):
        kmeans(f, 16)
    with pytest.raises(SelectionError, match="positive integer"):
        kmeans(f, 0)
    bad = f.copy()
    bad[2, 1] = np.nan
    with pytest.raises(SelectionError, match="NaN"):
        kmeans(bad, 3)


def test_kmeans_is_seeded():
    f = np.random.default_rng(1).random((40, 4))
    a, b = kmeans(f, 5, seed=7), kmeans(f, 5, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_one_hot_has_width_k_even_if_the_last_cluster_is_unused():
    y = one_hot([0, 2, 2], 5)   # the original's to_categorical would give width 3
    assert y.shape == (3, 5)
    np.testing.assert_array_equal(y.argmax(axis=1), [0, 2, 2])
    with pytest.raises(SelectionError):
        one_hot([5], 5)


def test_zero_feature_is_never_reliable():
    f = np.vstack([F, np.zeros(2)])
    cl = clustering_of(f, np.append(LABELS, 0))
    sel = select_reliable(f, cl, lam=0.5, rule="code")
    assert 7 not in sel.indices and sel.similarity[7] == 0.0
