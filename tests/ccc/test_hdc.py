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
    own_memberships,
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


def test_assignment_by_blocks_of_rows_is_the_whole_array_computation():
    """Step 2.3 forms the N x K confidences a block of rows at a time: the same bits as the
    original's one N x K array (ties included: a quarter of the entries repeat a value)."""
    rng = np.random.default_rng(0)
    hd = rng.random((203, 17), dtype=np.float32)
    hd[rng.random(hd.shape) < .25] = np.float32(.5)
    mem = (hd.sum(axis=1, keepdims=True) - hd) / np.float32(16)
    want = mem.argmax(axis=1)
    rows = np.arange(len(hd))
    for block_rows in (1, 7, 64, 4096):
        labels, labels_hd, conf = assign_labels(hd, block_rows=block_rows)
        np.testing.assert_array_equal(labels, want)
        assert labels_hd.tobytes() == hd[rows, want].tobytes() and conf.tobytes() == mem[rows, want].tobytes()


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


# ------------------------------------------------------------------ sparse Jaccard = dense HDC
# The reference: HDC as it was written for the dense N x N Jaccard matrix (ccc/ccc/hdc/hdc.py,
# HDC.fit, HDC.iterate, discrepancy_matrix and init.kmeans_plusplus2 before the sparse path),
# kept here verbatim in substance (with the N x K step 2.1 and 2.3 as they were) and driven by
# the compiled dense kernel. The package's HDC, given the sparse Jaccard, must return exactly
# what this returns on the dense one.
def _reference_discrepancy(J):
    A = np.negative(np.ascontiguousarray(J, dtype=np.float32))
    np.exp(A, out=A)
    np.subtract(np.float32(1), A, out=A)
    A[np.isnan(A)] = 1.0
    np.clip(A, 0.0, 1.0, out=A)
    return A


def _reference_kmeans_plusplus2(X, n_clusters, xx_dist, random_state):
    n = X.shape[0]
    n_local_trials = 2 + int(np.log(n_clusters))
    indices = np.full(n_clusters, -1, dtype=np.int64)
    indices[0] = random_state.randint(n)
    closest = xx_dist[indices[0]]
    potential = closest.sum()
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * potential
        candidates = np.searchsorted(np.cumsum(closest, dtype=np.float64), rand_vals)
        np.clip(candidates, None, n - 1, out=candidates)
        to_candidates = xx_dist[candidates]
        np.minimum(closest, to_candidates, out=to_candidates)
        potentials = to_candidates.sum(axis=1)
        best = int(np.argmin(potentials))
        potential = potentials[best]
        closest = to_candidates[best]
        indices[c] = candidates[best]
    labels = xx_dist[:, indices].argmin(axis=1).astype(np.int32)
    return X[indices].copy(), labels


def _reference_hdc(X, J, K, seed, outlier=True, threshold=None, max_iter=80, min_iter=10, n_tol=4,
                   similarity="Euler Cosine"):
    """(labels_, labels_full_, cluster_centers_, confidences_, shifts_, relocations_) of the dense HDC."""
    from ccc.hdc import _hdc
    from ccc.hdc.distances import EulerMap

    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    rs = np.random.RandomState(seed)
    x_map = EulerMap(X) if similarity == "Euler Cosine" else None
    centroids, labels = _reference_kmeans_plusplus2(X, K, J, rs)
    A = _reference_discrepancy(J)
    pod, best_shift, tol, shifts, relocations, conf = labels, 0xFFFFF, 0, [], 0, None
    for it in range(max_iter):
        old = centroids
        m_own = memberships(X, centroids, similarity, x_map)[np.arange(n), labels]
        hd = np.empty((n, K), dtype=np.float32)
        who = np.empty((n, K), dtype=np.int32)
        _hdc.harmonic_discrepancy(A, np.ascontiguousarray(m_own, dtype=np.float32),
                                  np.ascontiguousarray(labels, dtype=np.int32), hd, who, 1)
        mem = (hd.sum(axis=1, keepdims=True) - hd) / (K - 1)
        labels = mem.argmax(axis=1).astype(np.int32)
        labels_hd, conf = hd[np.arange(n), labels].copy(), mem[np.arange(n), labels].copy()
        relocations += relocate_empty_clusters(hd, conf, labels, labels_hd)
        pod = peripheral_object_detection(labels, labels_hd, K, 1.0, threshold)
        with np.errstate(invalid="ignore"):
            centroids = cluster_centroids(X, pod, K)
            shift = float(((old - centroids) ** 2).sum())
        shifts.append(shift)
        if shift == 0:
            break
        if it >= min_iter:
            if shift < best_shift:
                tol, best_shift = 0, shift
            elif tol < n_tol:
                tol += 1
            else:
                break
    return (pod if outlier else labels), labels, centroids, conf, shifts, relocations


def _as_dense(J_sparse):
    """The dense matrix a sparse Jaccard stands for: 1 wherever no pair is stored."""
    coo = J_sparse.tocoo()
    J = np.ones(J_sparse.shape, dtype=np.float32)
    J[coo.row, coo.col] = coo.data
    return J


def _compare(X, J_sparse, J_dense, K, seed, threads=2, outlier=True, threshold=None):
    ref = _reference_hdc(X, J_dense.copy(), K, seed, outlier=outlier, threshold=threshold)
    got = HDC(K, max_iter=80, init="k-means++2", similarity="Euler Cosine", threshold=threshold,
              num_threads=threads).fit(X, J_sparse.copy(), outlier=outlier, random_state=seed)
    np.testing.assert_array_equal(got.labels_, ref[0])
    np.testing.assert_array_equal(got.labels_full_, ref[1])
    np.testing.assert_array_equal(got.cluster_centers_, ref[2])
    np.testing.assert_array_equal(got.confidences_, ref[3])
    np.testing.assert_array_equal(got.shifts_, ref[4])       # NaN where a centroid is NaN
    assert got.n_iter_ == len(ref[4])
    assert got.relocations_ == ref[5]
    return got


@pytest.mark.parametrize("n_per, k, d, K, k1, seed", [
    (12, 15, 24, 15, 10, 0),     # clusters about the size of k1
    (5, 40, 16, 40, 12, 1),      # clusters far smaller than k1: rows nearly dense
    (30, 8, 32, 12, 6, 2),       # more clusters than identities, k1 small: very sparse rows
    (9, 30, 8, 20, 20, 3),       # fewer clusters than identities, noisy 8-d features
])
def test_sparse_jaccard_hdc_equals_the_dense_reference(n_per, k, d, K, k1, seed):
    from common_eval import jaccard_distance
    X, _ = blobs(n_per=n_per, k=k, d=d, seed=seed)
    J = jaccard_distance(X, k1=k1, k2=3, knn_columns=k1 + 1, output="sparse")
    # the dense output is what HDC used to get: the sparse one with 1 in the pairs not stored
    np.testing.assert_array_equal(jaccard_distance(X, k1=k1, k2=3, knn_columns=k1 + 1, output="dense"),
                                  _as_dense(J))
    assert J.nnz < 0.9 * J.shape[0] ** 2
    got = _compare(X, J, _as_dense(J), K, seed=seed + 10)
    assert got.n_iter_ >= 2
    _compare(X, J, _as_dense(J), K, seed=seed + 20, outlier=False, threads=1)


def test_sparse_hdc_ties_nan_outliers_and_empty_clusters():
    """Duplicated samples (ties in h and in the assignment), stored pairs equal to 1 (a tie
    with the pairs not stored), stored NaN (A = 1), a fixed POD threshold (empty centroids:
    NaN, every membership 0 and h = 0/0) and K close to N (relocations)."""
    rng = np.random.default_rng(4)
    base, _ = blobs(n_per=6, k=10, d=12, seed=4)
    X = np.concatenate([base, base[:20]])                 # 20 exact duplicates
    n = len(X)
    levels = np.array([0.25, 0.5, 0.75, 1.0], dtype=np.float32)
    dense = np.ones((n, n), dtype=np.float32)
    mask = rng.random((n, n)) < 0.15
    mask |= mask.T
    vals = levels[rng.integers(0, 4, (n, n))]
    vals = np.minimum(vals, vals.T)
    dense[mask] = vals[mask]
    np.fill_diagonal(dense, 0)
    dense[3, 7] = dense[7, 3] = np.nan
    mask[3, 7] = mask[7, 3] = True
    from scipy import sparse as sp
    stored = mask | np.eye(n, dtype=bool)                     # explicit zeros, ones and NaN stored
    J = sp.csr_matrix((dense[stored], np.nonzero(stored)), shape=(n, n))
    assert np.isnan(J.data).any() and (J.data == 1).any()
    runs = {K: _compare(X, J, dense, K, seed, threshold=threshold)
            for K, seed, threshold in ((10, 0, None), (35, 1, None), (9, 2, 0.3))}
    assert runs[35].relocations_ > 0                       # K close to N: empty clusters refilled
    assert runs[9].nan_centroids_ > 0 and np.isnan(runs[9].shifts_).all()
    assert 0 < (runs[10].labels_ < 0).sum() < n            # POD outliers


def test_sparse_kernel_equals_dense_kernel_with_ties_and_nan():
    """Step 2.2 alone on random inputs with few distinct values: every HD and every k*."""
    from scipy import sparse as sp

    from ccc.hdc.hdc import SparseDiscrepancy, discrepancy_matrix
    rng = np.random.default_rng(7)
    for n, K, density in ((60, 7, 0.2), (200, 30, 0.05), (150, 5, 0.6)):
        J = np.where(rng.random((n, n)) < density, rng.choice([0.0, 0.3, 0.6, 1.0], (n, n)), 1.0)
        J = J.astype(np.float32)
        J[rng.random((n, n)) < 0.01] = np.nan
        stored = (J != 1) | (rng.random((n, n)) < 0.05)
        S = sp.csr_matrix((J[stored], np.nonzero(stored)), shape=(n, n))
        A_sparse = discrepancy_matrix(S)
        assert isinstance(A_sparse, SparseDiscrepancy)
        A = discrepancy_matrix(J)
        np.testing.assert_array_equal(A_sparse.toarray(), A)
        m = rng.choice(np.array([0, 0.2, 0.5, 1, np.nan], np.float32), n)
        labels = rng.integers(-1, K, n).astype(np.int32)
        labels[labels == 2] = 3                                   # cluster 2 empty
        for threads in (1, 3):
            hd_d, who_d = harmonic_discrepancy(A, m, labels, K, threads)
            hd_s, who_s = harmonic_discrepancy(A_sparse, m, labels, K, threads)
            np.testing.assert_array_equal(who_s, who_d)
            np.testing.assert_array_equal(hd_s, hd_d)
            for A_any in (A, A_sparse):     # what fit asks: the same HD without the N x K k*
                hd_only, none = harmonic_discrepancy(A_any, m, labels, K, threads, members=False)
                assert none is None
                np.testing.assert_array_equal(hd_only, hd_d)


def test_sparse_distance_with_a_pair_stored_twice_is_refused():
    from scipy import sparse as sp
    J = sp.csr_matrix((np.array([0.5, 0.2], np.float32), np.array([1, 1]), np.array([0, 2, 2])), shape=(2, 2))
    with pytest.raises(ValueError, match="more than once"):
        discrepancy_matrix(J)


@pytest.mark.parametrize("similarity", ["Euler Cosine", "Euclidean", "Cosine"])
def test_own_memberships_are_the_full_matrix_entries(similarity):
    """Step 2.1 reads one membership per sample: the same float32 values as the N x K matrix."""
    X, _ = blobs(n_per=20, k=10, d=16, seed=9)
    rng = np.random.default_rng(9)
    C = X[rng.choice(len(X), 13, replace=False)] + 0.01
    labels = rng.integers(0, 13, len(X)).astype(np.int32)
    full = memberships(X, C, similarity)[np.arange(len(X)), labels]
    np.testing.assert_array_equal(own_memberships(X, C, labels, similarity), full)
    np.testing.assert_array_equal(own_memberships(X, C, labels, similarity, block_rows=7), full)
    if similarity != "Euler Cosine":
        return                              # scikit-learn's distances refuse a NaN centroid
    C[4] = np.nan                           # a centroid without member: every membership 0
    assert (own_memberships(X, C, labels, similarity, block_rows=7) == 0).all()
    np.testing.assert_array_equal(own_memberships(X, C, labels, similarity),
                                  memberships(X, C, similarity)[np.arange(len(X)), labels])


def test_bench_paths_give_the_same_labels(tmp_path, capsys):
    """python -m ccc.hdc.bench: one path per call (what its subprocesses run), same labels."""
    import json

    from ccc.hdc import bench
    common = ["--n", "240", "--dim", "16", "--ids", "12", "--clusters", "12", "--k1", "8", "--k2", "3",
              "--threads", "1"]
    rows = {}
    for case in ("sparse", "dense"):
        assert bench.main([*common, "--case", case, "--labels-out", str(tmp_path / f"{case}.npy")]) == 0
        rows[case] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.load(tmp_path / "sparse.npy"), np.load(tmp_path / "dense.npy"))
    assert rows["sparse"]["hdc_iterations"] == rows["dense"]["hdc_iterations"] >= 1
    assert rows["sparse"]["stored_per_row"] < 240 and rows["dense"]["stored_per_row"] is None
    assert rows["sparse"]["memberships_s"] > 0 and rows["sparse"]["peak_rss_gb"] > 0
    assert rows["sparse"]["cpu_s"] > 0
    assert bench.main(["--n", "10", "--clusters", "20"]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_euler_map_in_blocks_is_the_whole_array_computation(monkeypatch):
    """z(X) and sum_t z_t^2 written block after block: the values of the one-shot original."""
    from ccc.hdc import distances
    X, _ = blobs(n_per=20, k=10, d=16, seed=11)
    X[0, 0] = -0.0
    phase = np.float32(1.9 * np.pi) * X
    z = (np.cos(phase) + 1j * np.sin(phase)).astype(np.complex64)
    z *= np.complex64(1.0 / np.sqrt(2.0))
    monkeypatch.setattr(distances, "BLOCK_ROWS", 7)
    m = distances.EulerMap(X)
    np.testing.assert_array_equal(m.z.view(np.float32), z.view(np.float32))
    np.testing.assert_array_equal(m.sq, np.square(z).sum(axis=1))


def test_row_blocks_of_the_complex_product_are_the_whole_product_bit_for_bit():
    """Step 2.1 multiplies block of rows after block (no N x K complex product held): at 3C's
    2048-d, every distance has the bits of the one-shot product's (threads split rows, never
    the summed dimension)."""
    from ccc.hdc.distances import euler_cosine_distances, euler_cosine_row_blocks
    rng = np.random.default_rng(5)
    X = rng.random((2500, 2048), dtype=np.float32)
    C = rng.random((300, 2048), dtype=np.float32)
    whole = euler_cosine_distances(X, C)
    for rows in (4096, 1000, 333):
        blocks = np.concatenate([d for _, d in euler_cosine_row_blocks(X, C, block_rows=rows)])
        assert np.array_equal(blocks.view(np.uint32), whole.view(np.uint32)), rows
