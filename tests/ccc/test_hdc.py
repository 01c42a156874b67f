"""HDC (spec 3.3) against hand-worked values, and its determinism.

The hand-made set: six 1-D samples and two clusters. With one coordinate the coded Euler cosine
|sum_t (z(x_t) - z(c_t))^2| equals |z(x) - z(c)|^2 = 2 sin^2(alpha pi (x - c) / 2), so with
a = 1/alpha the distances are 0 (x = c), 0.5 (|x - c| = a/3), 1.5 (2a/3) and 2 (a, the maximum).
"""
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ccc.errors import ClusteringError
from ccc.hdc import (
    HDC,
    assign_labels,
    cluster_centroids,
    discrepancy_matrix,
    euler_cosine_distances,
    harmonic_discrepancy,
    kmeans_plusplus2,
    memberships,
    peripheral_object_detection,
    relocate_empty_clusters,
)

ALPHA = 1.9
a = 1 / ALPHA
X6 = np.array([[0], [a / 3], [2 * a / 3], [a], [a], [2 * a / 3]], dtype=np.float32)
C2 = np.array([[0], [a]], dtype=np.float32)
Y6 = np.array([0, 0, 0, 1, 1, 1], dtype=np.int32)
A6 = np.array([[0, .1, .3, .5, .6, .4],
               [.1, 0, .2, .5, .5, .3],
               [.3, .2, 0, .4, .4, .1],
               [.5, .5, .4, 0, .1, .2],
               [.6, .5, .4, .1, 0, .3],
               [.4, .3, .1, .2, .3, 0]])
J6 = (-np.log1p(-A6)).astype(np.float32)   # so that A = 1 - exp(-J) = A6


def test_euler_cosine_is_the_coded_form():
    D = euler_cosine_distances(X6, C2)
    expected = [[0, 2], [.5, 1.5], [1.5, .5], [2, 0], [2, 0], [1.5, .5]]
    assert D.dtype == np.float32
    np.testing.assert_allclose(D, expected, atol=2e-6)
    # more than one coordinate: no complex conjugation, so it is not sum_t |z(x_t) - z(c_t)|^2
    x = np.array([[0.0, 0.0]], dtype=np.float32)
    c = np.array([[0.2, 0.5]], dtype=np.float32)
    z = lambda v: np.exp(1j * ALPHA * np.pi * v.astype(np.float64)) / np.sqrt(2)  # noqa: E731
    coded = abs(((z(x) - z(c)) ** 2).sum())
    textbook = (abs(z(x) - z(c)) ** 2).sum()
    assert euler_cosine_distances(x, c)[0, 0] == pytest.approx(coded, abs=1e-6)
    assert abs(coded - textbook) > 0.1


def test_discrepancy_and_memberships():
    A = discrepancy_matrix(J6)
    np.testing.assert_allclose(A, A6, atol=1e-6)
    J = np.array([[0, np.nan], [3.0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(discrepancy_matrix(J), np.array([[0, 1], [1 - math.exp(-3), 0]],
                                                                  np.float32))
    m = memberships(X6, C2)          # exp(-5 D / max D), max D = 2
    np.testing.assert_allclose(m[:, 0], np.exp(-5 * np.array([0, .25, .75, 1, 1, .75])), rtol=1e-5, atol=1e-6)
    # a centroid without member is NaN: as numpy's max in the original, every membership becomes 0
    nan_c = np.array([[0], [np.nan]], dtype=np.float32)
    assert (memberships(X6, nan_c) == 0).all()


def test_one_iteration_by_hand():
    """HD, assignments, confidences, peripheral samples and centroids of one iteration."""
    hdc = HDC(2, similarity="Euler Cosine")
    step = hdc.iterate(X6, C2, Y6, discrepancy_matrix(J6))
    m = np.exp(-5 * np.array([0, .25, .75, 0, 0, .25]))   # own-cluster memberships of the previous labels
    np.testing.assert_allclose(step["memberships"], m, rtol=1e-5, atol=1e-6)
    # row 0, cluster 0: h = A m / (A + m) = 0, .0741, .0218 for members 0, 1, 2 -> member 1, HD = A[0, 1]
    np.testing.assert_array_equal(step["members"], [[1, 4], [0, 3], [0, 3], [0, 5], [0, 5], [0, 4]])
    np.testing.assert_allclose(step["hd"], [[.1, .6], [.1, .5], [.3, .4], [.5, .2], [.6, .3], [.4, .3]],
                               atol=1e-6)
    np.testing.assert_array_equal(step["labels"], [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(step["labels_hd"], [.1, .1, .3, .2, .3, .3], atol=1e-6)
    np.testing.assert_allclose(step["confidences"], [.6, .5, .4, .5, .6, .4],
                               atol=1e-6)  # mean HD to the others
    assert step["relocations"] == 0
    # cluster 0: hd .1 .1 .3, mean .1667 + std .1155 = .2821 < .3 -> sample 2 peripheral;
    # cluster 1: hd .2 .3 .3, mean .2667 + std .0577 = .3244 > .3 -> none
    np.testing.assert_array_equal(step["labels_pod"], [0, 0, -1, 1, 1, 1])
    np.testing.assert_allclose(step["centroids"], [[a / 6], [8 * a / 9]], rtol=1e-6)


def test_harmonic_kernel_tie_rule_nan_and_empty_cluster():
    A = np.array([[0, .4, .2, .3],
                  [.4, 0, .5, np.nan],
                  [.2, .5, 0, .1],
                  [.3, .1, .1, 0]], dtype=np.float32)
    m = np.array([1, .5, .5, 1], dtype=np.float32)
    labels = np.array([0, 1, 1, 0], dtype=np.int32)           # cluster 2 has no member
    hd, who = harmonic_discrepancy(A, m, labels, 3)
    # row 0, cluster 1: members 1 (A .4: h .4*.5/.9 = .2222) and 2 (A .2: .2*.5/.7 = .1429) -> 1
    # row 1, cluster 0: members 0 (A .4: .4/1.4) and 3 (A NaN: NaN never wins) -> 0
    # row 3, cluster 1: members 1 and 2 both A .1, m .5: equal h, the first (1) wins
    # cluster 2 (empty): member 0
    np.testing.assert_array_equal(who, [[3, 1, 0], [0, 2, 0], [0, 1, 0], [0, 1, 0]])
    np.testing.assert_array_equal(hd[:, 2], A[:, 0])
    assert hd[1, 0] == np.float32(.4) and hd[3, 1] == np.float32(.1)


def test_assignment_ties_take_the_first_cluster():
    hd = np.array([[.3, .2, .2], [.1, .1, .4]], dtype=np.float32)
    labels, labels_hd, conf = assign_labels(hd)
    np.testing.assert_array_equal(labels, [1, 0])
    np.testing.assert_allclose(conf, [(.3 + .2) / 2, (.1 + .4) / 2])


def test_relocation_by_hand():
    hd = np.arange(21, dtype=np.float32).reshape(7, 3) / 100
    labels = np.array([0, 0, 0, 0, 0, 1, 1], dtype=np.int32)          # cluster 2 empty
    conf = np.array([.5, .2, .4, .3, .6, .1, .05], dtype=np.float32)
    labels_hd = hd[np.arange(7), labels].copy()
    # cluster 1 has 2 < 5 members: its samples (conf .1, .05) are protected; the least confident
    # of the rest is sample 1 (.2): it moves to cluster 2 and takes HD(1, 2) as its hd
    assert relocate_empty_clusters(hd, conf, labels, labels_hd) == 1
    np.testing.assert_array_equal(labels, [0, 2, 0, 0, 0, 1, 1])
    assert labels_hd[1] == hd[1, 2]
    # two empty clusters, equal confidences: lower sample index first, into the lower cluster id
    hd4 = np.zeros((8, 4), dtype=np.float32)
    labels = np.array([0] * 8, dtype=np.int32)
    conf = np.array([.5, .3, .9, .3, .8, .7, .6, .4], dtype=np.float32)
    relocate_empty_clusters(hd4, conf, labels, np.zeros(8, np.float32))
    np.testing.assert_array_equal(labels, [0, 1, 0, 2, 0, 0, 0, 3])


def test_relocation_that_cannot_finish_is_an_error():
    # K = N with every cluster protected: the original's loop never ends; here a clear error
    hd = np.zeros((4, 4), dtype=np.float32)
    labels = np.array([0, 0, 1, 1], dtype=np.int32)
    with pytest.raises(ClusteringError, match="lower --num-clusters"):
        relocate_empty_clusters(hd, np.zeros(4, np.float32), labels, np.zeros(4, np.float32))


def test_pod_fixed_threshold_and_singletons():
    labels = np.array([0, 0, 1, 2, 2], dtype=np.int32)
    hd = np.array([.1, .5, .9, .2, .2], dtype=np.float32)
    np.testing.assert_array_equal(peripheral_object_detection(labels, hd, 3, threshold=.3), [0, -1, -1, 2, 2])
    # mean + std: a single member is never peripheral, equal values never are
    np.testing.assert_array_equal(peripheral_object_detection(labels, hd, 3), [0, 0, 1, 2, 2])
    c = cluster_centroids(np.eye(5, dtype=np.float32), np.array([0, 0, -1, 2, 2]), 3)
    assert np.isnan(c[1]).all() and c[0, 0] == .5 and c[2, 4] == .5


class ScriptedRandomState:
    """Stands for numpy's RandomState with fixed draws."""

    def randint(self, n):
        return 0

    def uniform(self, size):
        return np.array([0.5, 0.1])[:size]


def test_kmeans_plusplus2_by_hand():
    p = np.array([0, 1, 2, 10, 11], dtype=np.float32)
    J = (np.abs(p[:, None] - p[None, :]) / 11).astype(np.float32)
    X = p[:, None]
    # seed 0; closest = J[0] = [0, 1, 2, 10, 11]/11, potential 24/11; L = 2 + floor(ln 2) = 2 draws
    # 0.5 * 24/11 -> cumsum index 3, 0.1 * 24/11 -> index 2; potentials 4/11 (3) and 18/11 (2) -> 3
    centroids, labels, seeds = kmeans_plusplus2(X, 2, J, ScriptedRandomState())
    np.testing.assert_array_equal(seeds, [0, 3])
    np.testing.assert_array_equal(labels, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(centroids, X[[0, 3]])


def blobs(n_per=12, k=15, d=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d))
    X = np.concatenate([c + 0.35 * rng.standard_normal((n_per, d)) for c in centres]).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.repeat(np.arange(k), n_per)


def fit(X, J, threads, seed=5, **kw):
    return HDC(15, max_iter=80, init="k-means++2", similarity="Euler Cosine", num_threads=threads,
               **kw).fit(X, J.copy(), outlier=True, random_state=seed)


def test_seeded_hdc_is_deterministic_and_thread_count_independent():
    from common_eval import jaccard_distance
    X, truth = blobs()
    J = jaccard_distance(X, k1=10, k2=3, knn_columns=11, output="dense")
    with threadpool_limits(1):
        one = fit(X, J, 1)
    with threadpool_limits(2):
        two = fit(X, J, 2)
        again = fit(X, J, 2)
    for other in (two, again):
        np.testing.assert_array_equal(one.labels_, other.labels_)
        np.testing.assert_array_equal(one.cluster_centers_, other.cluster_centers_)
        np.testing.assert_array_equal(one.confidences_, other.confidences_)
        assert one.shifts_ == other.shifts_
    # and it clusters: the members of each found cluster share their true identity
    kept = one.labels_ >= 0
    purity = np.mean([np.bincount(truth[kept][one.labels_[kept] == c]).max() / (one.labels_[kept] == c).sum()
                      for c in np.unique(one.labels_[kept])])
    assert purity > 0.9 and kept.mean() > 0.6


def test_more_clusters_than_samples_is_a_clear_error():
    X, _ = blobs(n_per=2, k=3)
    with pytest.raises(ClusteringError,
                       match="--num-clusters 15 is larger than the number of training samples"):
        fit(X, np.zeros((6, 6), np.float32), 1)
