"""Sparse k-reciprocal Jaccard distance and re-ranking against literal dense ports written here."""
import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import DBSCAN

from common_eval import jaccard_distance, k_reciprocal_rerank
from common_eval.jaccard import expanded_sets, knn, reciprocal_sets
from common_eval.rank import distance_block


def ordered_neighbours(d):
    """Full ranking of every row of a dense distance matrix, ties by index (stable)."""
    return np.argsort(d, axis=1, kind="stable")


def dense_spcl(X, k1, k2, columns):
    """SpCL's compute_jaccard_distance, loop for loop, on dense N x N arrays (float64)."""
    N = len(X)
    ranks = ordered_neighbours(((X[:, None, :] - X[None]) ** 2).sum(-1))[:, :columns]

    def recip(i, k):
        forward = ranks[i, :k + 1]
        backward = ranks[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    full = [recip(i, k1) for i in range(N)]
    half = [recip(i, int(np.around(k1 / 2))) for i in range(N)]
    V = np.zeros((N, N))
    for i in range(N):
        expansion = full[i]
        for c in full[i]:
            if len(np.intersect1d(half[c], full[i])) > 2 / 3 * len(half[c]):
                expansion = np.append(expansion, half[c])
        expansion = np.unique(expansion)
        logits = -(2 - 2 * X[i] @ X[expansion].T)
        w = np.exp(logits - logits.max())
        V[i, expansion] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[ranks[i, :k2]].mean(0) for i in range(N)])
    J = np.zeros((N, N))
    for i in range(N):
        s = np.minimum(V[i][None], V).sum(1)
        J[i] = 1 - s / (2 - s)
    J[J < 0] = 0
    return J


def dense_rerank(q_g, q_q, g_g, k1=20, k2=6, lam=0.3):
    """torchreid / SpCL re_ranking, loop for loop (float64, stable argsort)."""
    Q = q_g.shape[0]
    d = np.concatenate([np.concatenate([q_q, q_g], 1), np.concatenate([q_g.T, g_g], 1)], 0) ** 2
    d = np.transpose(d / np.max(d, axis=0))
    ranks = ordered_neighbours(d)
    N = len(d)
    V = np.zeros_like(d)
    for i in range(N):
        fwd = ranks[i, :k1 + 1]
        R = fwd[np.where(ranks[fwd, :k1 + 1] == i)[0]]
        E = R
        for c in R:
            h = int(np.around(k1 / 2)) + 1
            cf = ranks[c, :h]
            cR = cf[np.where(ranks[cf, :h] == c)[0]]
            if len(np.intersect1d(cR, R)) > 2 / 3 * len(cR):
                E = np.append(E, cR)
        E = np.unique(E)
        w = np.exp(-d[i, E])
        V[i, E] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[ranks[i, :k2]].mean(0) for i in range(N)])
    J = np.zeros((Q, N))
    for i in range(Q):
        s = np.minimum(V[i][None], V).sum(1)
        J[i] = 1 - s / (2 - s)
    return (J * (1 - lam) + d[:Q] * lam)[:, Q:]


def clustered(n=300, dim=24, ids=30, noise=0.6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(ids, dim))[rng.integers(0, ids, n)] + noise * rng.normal(size=(n, dim))
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def to_dense(J):
    D = np.ones(J.shape)
    c = J.tocoo()
    D[c.row, c.col] = c.data
    return D


# ------------------------------------------------------------------------------ hand-worked sets

def test_reciprocal_sets_hand_worked():
    # neighbour lists (self first) of 4 points; window 2 = self + nearest
    ranks = np.array([[0, 1, 2], [1, 0, 3], [2, 1, 0], [3, 2, 1]])
    R = reciprocal_sets(ranks, 2).toarray().astype(bool)
    # 0<->1 mutual; 2's nearest is 1 but 1's is 0; 3's nearest is 2 but 2's is 1
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], bool)
    np.testing.assert_array_equal(R, expected)


def test_expansion_hand_worked():
    # k1 = 2: full window 3, half window round(1)+1 = 2
    ranks = np.array([[0, 1, 2], [1, 0, 2], [2, 0, 1], [3, 2, 0]])
    E = expanded_sets(ranks, 2).toarray().astype(bool)
    # R(0) = {0,1,2}: 2's window 3 is [2,0,1] -> contains 0; R(2) = {2,0,1}; R(3) = {3}
    # half sets: Rh(0) = {0,1}, Rh(1) = {1,0}, Rh(2) = {2}; all overlap R(0) fully -> no growth
    np.testing.assert_array_equal(E[0], [1, 1, 1, 0])
    np.testing.assert_array_equal(E[3], [0, 0, 0, 1])


def test_knn_is_exact_with_ties_by_index_across_tiles():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(700, 6)).astype(np.float32)
    X[100] = X[200] = X[650]  # exact ties
    idx, val = knn(X, 9, tile=128)
    d = ((X[:, None].astype(np.float64) - X[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, ordered_neighbours(d)[:, :9])
    np.testing.assert_allclose(val, np.take_along_axis(d, idx, 1), atol=1e-4)
    assert idx[200, 0] == 100 and idx[200, 1] == 200 and idx[200, 2] == 650


def test_column_merge_equals_row_merge_of_the_transposed_block():
    """topk_merge_cols (the lists of a tile's columns, read down the columns) against topk_merge
    on the transposed copy and against a sort: ties, lists filled by an earlier tile, a column
    count that is not a multiple of the 16-column groups."""
    from common_eval import _knn
    rng = np.random.default_rng(1)
    block = rng.integers(0, 6, size=(23, 37)).astype(np.float32)  # many exact ties
    add = rng.integers(0, 3, size=23).astype(np.float32)
    first = rng.integers(0, 6, size=(37, 3)).astype(np.float32)  # an earlier tile: indices 100..102
    k = 5
    lists = []
    for _ in range(2):
        idx, val = np.zeros((37, k), dtype=np.int64), np.zeros((37, k), dtype=np.float32)
        filled = np.zeros(37, dtype=np.int64)
        _knn.topk_merge(first, np.zeros(0, np.float32), 100, idx, val, filled, 1)
        lists.append((idx, val, filled))
    (i1, v1, f1), (i2, v2, f2) = lists
    _knn.topk_merge(np.ascontiguousarray(block.T), add, 40, i1, v1, f1, 2)
    _knn.topk_merge_cols(block, add, 40, i2, v2, f2, 2)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(v1, v2)
    assert (f2 == k).all()
    for j in range(37):
        cand = sorted([(float(v), 100 + i) for i, v in enumerate(first[j])]
                      + [(float(v + a), 40 + i) for i, (v, a) in enumerate(zip(block[:, j], add))])[:k]
        assert [int(c) for _, c in cand] == i2[j].tolist()
        assert [v for v, _ in cand] == v2[j].tolist()


def test_long_rows_are_sorted_exactly():
    """Rows of thousands of entries (several radix digits in play) are sorted by distance and
    hold exactly the entries of the unsorted dense result."""
    X = clustered(n=2500, ids=3, noise=2.0, seed=6)
    J = jaccard_distance(X, 30, 6)
    D = jaccard_distance(X, 30, 6, output="dense")
    assert J.nnz / 2500 > 1000
    for i in range(0, 2500, 97):
        cols = J.indices[J.indptr[i]:J.indptr[i + 1]]
        row = J.data[J.indptr[i]:J.indptr[i + 1]]
        assert np.all(np.diff(row) >= 0)
        np.testing.assert_array_equal(row, D[i, cols])
        assert np.count_nonzero(D[i] < 1) == len(cols)


# ------------------------------------------------------------------- agreement with dense ports

@pytest.mark.parametrize("k1, k2, columns", [(20, 6, 20), (30, 6, 31), (10, 1, 10), (25, 6, 25)])
def test_jaccard_equals_dense_spcl(k1, k2, columns):
    X = clustered()
    J = jaccard_distance(X, k1, k2, knn_columns=columns)
    ref = dense_spcl(X.astype(np.float64), k1, k2, columns)
    assert sparse.issparse(J) and J.shape == (300, 300)
    np.testing.assert_allclose(to_dense(J), ref, atol=1e-5)
    # the support is exactly where the dense matrix is below 1
    assert J.nnz == int((ref < 1).sum())
    np.testing.assert_allclose(jaccard_distance(X, k1, k2, knn_columns=columns, output="dense"),
                               ref, atol=1e-5)


def test_sparse_rows_sorted_and_usable_by_dbscan():
    X = clustered(seed=3)
    J = jaccard_distance(X, 20, 6)
    for i in range(0, 300, 37):
        row = J.data[J.indptr[i]:J.indptr[i + 1]]
        assert np.all(np.diff(row) >= 0)
    assert (np.abs(J.diagonal()) < 1e-6).all()  # stored (sum of minima = 1 up to rounding)
    dense = to_dense(J)
    for eps in (0.3, 0.5, 0.6):
        a = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit(J)
        b = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit(dense)
        np.testing.assert_array_equal(a.labels_, b.labels_)
        np.testing.assert_array_equal(a.core_sample_indices_, b.core_sample_indices_)


def test_jaccard_independent_of_threads_and_precomputed_knn():
    X = clustered(n=400, seed=4)
    a = jaccard_distance(X, 20, 6, num_threads=1)
    b = jaccard_distance(X, 20, 6, num_threads=2)
    assert (a != b).nnz == 0
    idx, _ = knn(X, 20)
    c = jaccard_distance(X, 20, 6, knn_indices=idx)
    assert (a != c).nnz == 0


def test_jaccard_on_raw_features_with_large_norms():
    # AuxUSL clusters unnormalised features: the softmax must not overflow
    X = clustered(seed=5) * 40.0
    J = jaccard_distance(X, 20, 6)
    assert np.isfinite(J.data).all()
    np.testing.assert_allclose(to_dense(J), dense_spcl(X.astype(np.float64), 20, 6, 20), atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(features=np.zeros((0, 4))), "non-empty"),
    (dict(features=np.full((5, 4), np.nan)), "NaN"),
    (dict(features=np.zeros((5, 4)), k1=0), "k1"),
    (dict(features=np.zeros((5, 4)), k2=1.5), "k2"),
    (dict(features=np.zeros((5, 4)), output="csr"), "output"),
    (dict(features=np.zeros((5, 4)), knn_indices=np.zeros((4, 20), int)), "knn_indices"),
])
def test_jaccard_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jaccard_distance(**kwargs)


def test_fewer_points_than_k1():
    X = clustered(n=12, ids=3)
    J = jaccard_distance(X, 20, 6)
    assert J.shape == (12, 12) and (np.abs(J.diagonal()) < 1e-6).all()


# ------------------------------------------------------------------------------------ re-ranking

def test_rerank_equals_dense_port_from_distances_and_features():
    X = clustered(n=260, seed=6)
    qf, gf = X[:60], X[60:]
    qg, qq, gg = (distance_block(a, b, "sqeuclidean") for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    ref = dense_rerank(qg.astype(np.float64), qq.astype(np.float64), gg.astype(np.float64))
    np.testing.assert_allclose(k_reciprocal_rerank(qg, qq, gg), ref, atol=1e-5)
    np.testing.assert_allclose(k_reciprocal_rerank(query_features=qf, gallery_features=gf), ref,
                               atol=1e-5)
    ref2 = dense_rerank(qg.astype(np.float64), qq.astype(np.float64), gg.astype(np.float64),
                        k1=10, k2=1, lam=0.0)
    np.testing.assert_allclose(k_reciprocal_rerank(qg, qq, gg, k1=10, k2=1, lambda_value=0.0),
                               ref2, atol=1e-5)


def test_rerank_follows_torchreid_normalisation_on_asymmetric_input():
    rng = np.random.default_rng(7)
    qg, qq, gg = rng.random((20, 50)), rng.random((20, 20)), rng.random((50, 50))
    np.testing.assert_allclose(k_reciprocal_rerank(qg, qq, gg, k1=8, k2=3),
                               dense_rerank(qg, qq, gg, k1=8, k2=3), atol=1e-5)


def test_rerank_bad_input():
    with pytest.raises(ValueError, match="q_q_dist must be 2 x 2"):
        k_reciprocal_rerank(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        k_reciprocal_rerank(np.full((2, 3), np.nan), np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="lambda"):
        k_reciprocal_rerank(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((3, 3)), lambda_value=2)


# ------------------------------------------------------------------- float32 arithmetic

def dense_minsum(V):
    """SpCL's sum-of-minima loop on a dense V in V's dtype: columns of row i ascending."""
    N = len(V)
    support = [np.where(V[:, c] != 0)[0] for c in range(N)]
    J = np.zeros((N, N), dtype=V.dtype)
    for i in range(N):
        s = np.zeros(N, dtype=V.dtype)
        for c in np.where(V[i] != 0)[0]:
            s[support[c]] = s[support[c]] + np.minimum(V[i, c], V[support[c], c])
        J[i] = 1 - s / (2 - s)
    J[J < 0] = 0
    return J


def test_jaccard_from_encoding_float32_is_the_dense_float32_loop_bit_for_bit():
    from common_eval.jaccard import jaccard_from_encoding
    rng = np.random.default_rng(7)
    N = 120
    V = np.zeros((N, N), dtype=np.float32)
    for i in range(N):  # sparse rows; near-duplicate rows summing to ~1 in float32
        cols = rng.choice(N, size=rng.integers(3, 12), replace=False)
        w = rng.random(len(cols)).astype(np.float32)
        V[i, cols] = w / w.sum(dtype=np.float32)
        if i % 3 == 1:
            V[i] = V[i - 1]
    ref = dense_minsum(V)
    J = jaccard_from_encoding(sparse.csr_matrix(V), output="dense", num_threads=2)
    np.testing.assert_array_equal(J, ref)  # float32: every addition rounded as the loop's
    S = jaccard_from_encoding(sparse.csr_matrix(V))
    np.testing.assert_array_equal(to_dense(S), ref)
    # float64 V: the float64 loop, rounded to float32 at the end
    J64 = jaccard_from_encoding(sparse.csr_matrix(V.astype(np.float64)), output="dense")
    np.testing.assert_array_equal(J64, dense_minsum(V.astype(np.float64)).astype(np.float32))
    assert (J == 0).sum() != (J64 == 0).sum() or not np.array_equal(J, J64)
