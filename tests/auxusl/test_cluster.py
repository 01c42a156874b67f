"""Clustering pieces against hand-worked values: adaptive eps, ICDBSCAN (TOC in training), the
training-time SCP/STS distance, the RLSCE neighbour map, and the no-cluster error."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import DBSCAN

from auxusl.cluster import (
    ICDBSCAN,
    ClusterState,
    adaptive_eps,
    clustering_distance,
    neighbour_map,
    run_clustering,
)
from auxusl.cluster.distance import jaccard_float32, sts_factor
from auxusl.errors import NoClusterError
from common_eval import jaccard_distance

# upper triangle (0,1)=.2 (0,2)=.5 (0,3)=1 (1,2)=.1 (1,3)=0 (2,3)=.4: positive entries .1 .2 .4 .5 1 (M = 5)
DENSE = np.array([[0, 0.2, 0.5, 1], [0.2, 0, 0.1, 0], [0.5, 0.1, 0, 0.4], [1, 0, 0.4, 0]], dtype=np.float32)


def sparse_version():
    rows, cols, vals = [], [], []
    for i in range(4):
        for j in range(4):
            if DENSE[i, j] < 1:  # absent = 1; the (1, 3) zero and the diagonal are stored
                rows.append(i)
                cols.append(j)
                vals.append(DENSE[i, j])
    return sparse.csr_matrix((vals, (rows, cols)), shape=(4, 4))


@pytest.mark.parametrize("rho, want", [(0.4, 0.15), (0.8, 0.3), (1.0, 0.44)])
def test_adaptive_eps_by_hand(rho, want):
    # round(rho * 5) smallest positive upper-triangular distances, averaged
    assert adaptive_eps(DENSE, rho) == pytest.approx(want)
    assert adaptive_eps(sparse_version(), rho) == pytest.approx(want)


def test_adaptive_eps_selecting_nothing_is_an_error():
    with pytest.raises(ValueError, match="ADAPTIVE_RHO"):
        adaptive_eps(DENSE, 0.01)


# six points on a line: 0, .1, .2, .3, 5, 5.1; eps .25, min_samples 2
LINE = np.array([0, 0.1, 0.2, 0.3, 5, 5.1])
D_LINE = np.abs(LINE[:, None] - LINE[None, :])


def test_dbscan_chains_without_constraints():
    labels = DBSCAN(eps=0.25, min_samples=2, metric="precomputed").fit_predict(D_LINE)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1]


def test_icdbscan_by_hand():
    """1 and 2 cannot link. Point 0 seeds cluster 0 with U = CL(0) = {}; it absorbs 0, 1 (U <- {2}),
    skips 2 (in U); 1 absorbs 3; 3 adds nothing: cluster 0 = {0, 1, 3}. Point 2 seeds a cluster
    that can absorb nobody new: dissolved, noise. 4 and 5 form cluster 1. As a side effect, the
    seed's own set CL(0) grew to {2} (the original mutates it in place)."""
    cl = [set(), {2}, {1}, set(), set(), set()]
    model = ICDBSCAN(0.25, 2, cl, relaxed=0.0)
    assert model.fit_predict(D_LINE).tolist() == [0, 0, -1, 0, 1, 1]
    assert model.state() == [[2], [2], [1], [], [], []]
    assert cl[0] == set()  # the caller's sets are copied, the model's state grows


@pytest.mark.parametrize(
    "relaxed, want",
    [
        (-1.0, [0, 0, -1, 0, 1, 1]),
        (-0.2, [0, 0, 0, 0, 1, 1]),
        (0.5, [0, 0, 0, 0, 1, 1]),
        (0.0, [0, 0, -1, 0, 1, 1]),
    ],
)
def test_icdbscan_relaxation(relaxed, want):
    # relaxed < 0 keeps constraints with D <= eps * |relaxed| (D(1, 2) = .1: kept at -1, dropped at -.2);
    # relaxed >= 0 drops those with D <= eps * relaxed (.1 <= .125 at 0.5: dropped)
    assert (
        ICDBSCAN(0.25, 2, [set(), {2}, {1}, set(), set(), set()], relaxed).fit_predict(D_LINE).tolist()
        == want
    )


def test_icdbscan_state_carries_across_epochs():
    state = ClusterState(0.25, 2, True, 0.0, [[], [2], [1], [], [], []])
    run_clustering(D_LINE, state)
    assert state.cannotlinks[0] == [2]  # grown, and kept for the next epoch (and the checkpoint)
    again = ClusterState.from_dict(state.as_dict())
    assert again.cannotlinks == state.cannotlinks and again.eps == 0.25


def test_no_cluster_is_a_clear_error():
    with pytest.raises(
        NoClusterError,
        match=r"DBSCAN \(eps 0.0100, min_samples 3\) found no cluster among the 6 "
        r"training tracklets at epoch 2.*CLUSTER.MIN_SAMPLES",
    ):
        run_clustering(D_LINE + 1, ClusterState(0.01, 3), epoch=2)


def test_training_distance_with_scp_and_sts():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(30, 8)).astype(np.float32)
    scp = (rng.random((30, 30)) < 0.3).astype(np.float32)
    P = rng.random((30, 30)).astype(np.float32)
    J = jaccard_float32(f, k1=6, k2=2, output="dense")
    # the same distance as common_eval's float64 one, up to float32 rounding
    np.testing.assert_allclose(J, jaccard_distance(f, k1=6, k2=2, output="dense"), rtol=0, atol=1e-5)
    D = clustering_distance(f, 6, 2, scp=scp, scp_lambda=0.006, sts=sts_factor(P, 0.6, 8.0))
    np.testing.assert_allclose(D, (J + 0.006 * scp) * (1 + 0.6 * np.exp(-8 * P)), rtol=1e-5)
    assert sparse.issparse(clustering_distance(f, 6, 2))  # unmodified: sparse, straight to DBSCAN
    assert sts_factor(np.array([0.0, 1.0]), 0.6, 8.0).tolist() == pytest.approx([1.6, 1 + 0.6 * np.exp(-8)])


def test_neighbour_map_ties_by_index():
    # two tight pairs far apart: each centroid's Jaccard neighbour is its partner; all else is 1
    c = np.array([[0, 0], [0.1, 0], [10, 0], [10.1, 0]], dtype=np.float32)
    m = neighbour_map(c, K=1, k1=2, k2=1).numpy()
    np.testing.assert_array_equal(m, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    m = neighbour_map(c, K=2, k1=2, k2=1).numpy()  # the third column is a tie at 1: lowest index
    np.testing.assert_array_equal(m, [[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 1, 1], [1, 0, 1, 1]])
