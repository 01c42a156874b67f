"""The adaptive eps reads the float32 rounding leftovers of the original's Jaccard distance.

eps = the mean of the smallest 0.16 % of the positive upper-triangle distances. On dense chunks
(several near-duplicate samples per tracklet) that tail holds pairs whose distance is 0 in exact
arithmetic: the original (SpCL's ``compute_jaccard_distance``, float32 numpy/torch arrays) gets
exactly 0 or about 6e-8 there, a float64 computation about 1e-16 and fewer exact zeros, hence a
different eps. ``original_jaccard`` below is an independent dense float32 implementation of the
original's computation, step by step (kNN ranked as faiss's IndexFlatL2 in float32, torch's
float32 mm and softmax per row, numpy float32 mean and min-sum loops)."""

import numpy as np
import pytest
import torch

from auxusl.cluster import adaptive_eps, clustering_distance, neighbour_map
from auxusl.cluster.distance import jaccard_float32
from common_eval import jaccard_distance


def dense_chunks(seed, ids=60, dim=256):
    """Raw (non-negative, unnormalised) features like DukeV dense-40 chunks: 3-5 tracklets per
    identity, 2-8 chunks per tracklet, chunks of one tracklet nearly equal."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(ids):
        centre = rng.gamma(2.0, 0.5, dim)
        for _ in range(rng.integers(3, 5, endpoint=True)):
            tracklet = centre + rng.normal(0, 0.35, dim)
            for _ in range(rng.integers(2, 8, endpoint=True)):
                out.append(np.maximum(tracklet + rng.normal(0, 0.05, dim), 0))
    return np.asarray(out, dtype=np.float32)


def original_jaccard(X, k1=30, k2=6):
    """Dense N x N float32, as the original computes it."""
    N = len(X)
    T = torch.from_numpy(X)
    sq = (X * X).sum(axis=1, dtype=np.float32)
    d = np.maximum(sq[:, None] + sq[None, :] - np.float32(2) * (X @ X.T), 0)  # faiss IndexFlatL2
    rank = np.argsort(d, axis=1, kind="stable")[:, :k1]

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return forward[np.where(rank[forward, : k + 1] == i)[0]]

    full = [reciprocal(i, k1) for i in range(N)]
    half = [reciprocal(i, int(np.around(k1 / 2))) for i in range(N)]
    V = np.zeros((N, N), dtype=np.float32)
    for i in range(N):
        expansion = full[i]
        for c in full[i]:
            if len(np.intersect1d(half[c], full[i])) > 2 / 3 * len(half[c]):
                expansion = np.append(expansion, half[c])
        expansion = np.unique(expansion)
        dist = 2 - 2 * torch.mm(T[i].unsqueeze(0).contiguous(), T[expansion].t())
        V[i, expansion] = torch.softmax(-dist, dim=1).view(-1).numpy()
    V = np.stack([np.mean(V[rank[i, :k2]], axis=0) for i in range(N)])
    assert V.dtype == np.float32
    support = [np.where(V[:, c] != 0)[0] for c in range(N)]
    J = np.zeros((N, N), dtype=np.float32)
    for i in range(N):
        s = np.zeros(N, dtype=np.float32)
        for c in np.where(V[i] != 0)[0]:
            s[support[c]] = s[support[c]] + np.minimum(V[i, c], V[support[c], c])
        J[i] = 1 - s / (2 - s)
    J[J < 0] = 0
    return J


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adaptive_eps_equals_the_originals_float32_eps_on_dense_chunks(seed):
    X = dense_chunks(seed)
    J = original_jaccard(X)
    want = adaptive_eps(J)
    D = clustering_distance(X, 30, 6)
    assert adaptive_eps(D) == pytest.approx(want, rel=0.02)
    # the same tail: as many exact zeros among the pairs, and leftovers of float32 size
    iu = np.triu_indices(len(X), 1)
    Dd = jaccard_float32(X, 30, 6, output="dense")
    zeros_ours, zeros_orig = int((Dd[iu] == 0).sum()), int((J[iu] == 0).sum())
    assert zeros_orig > 500 and abs(zeros_ours - zeros_orig) <= 0.01 * zeros_orig
    tail = J[iu][(J[iu] > 0) & (J[iu] < 1e-6)]
    assert tail.size and tail.min() > 5e-8  # the original's leftovers: float32 ulps, not 1e-16
    np.testing.assert_allclose(Dd, J, rtol=0, atol=1e-6)
    # the float64 computation has a different tail, hence another eps
    assert adaptive_eps(jaccard_distance(X, k1=30, k2=6)) < 0.6 * want


def test_float32_distance_is_the_same_distance_and_keeps_the_sparse_contract():
    X = dense_chunks(3, ids=12)
    S = jaccard_float32(X, 30, 6)
    assert S.dtype == np.float32 and (S.diagonal() < 1e-6).all()
    full = np.ones(S.shape, dtype=np.float32)  # absent entries mean exactly 1
    coo = S.tocoo()
    full[coo.row, coo.col] = coo.data
    np.testing.assert_array_equal(full, jaccard_float32(X, 30, 6, output="dense"))
    ref = jaccard_distance(X, 30, 6).tocoo()
    # weights that underflow in float32 are 0 there: fewer pairs share support (at distance ~1)
    assert set(zip(coo.row, coo.col)) <= set(zip(ref.row, ref.col))
    # float32 logits of raw features (|x.y| ~ 400) round at ~3e-5: weights agree to ~1e-4
    np.testing.assert_allclose(full, jaccard_distance(X, 30, 6, output="dense"), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        jaccard_float32(np.full((5, 3), np.nan, dtype=np.float32))


def test_rlsce_neighbour_map_uses_the_same_arithmetic():
    C = dense_chunks(4, ids=10)[::3]
    D = jaccard_float32(C, 30, 6, output="dense")
    M = neighbour_map(C, K=5).numpy()
    order = np.argsort(D, axis=1, kind="stable")[:, :6]
    assert (np.take_along_axis(M, order, 1) == 1).all() and (M.sum(1) == 6).all()
