"""The reliability criterion (cluster/reliability.py) against hand-worked values and the
original's N x N formulation."""
import numpy as np
import pytest
import torch

from cdsm.cluster.reliability import iou_per_sample, reliability, with_singletons


def test_outliers_become_singletons():
    assert with_singletons([0, -1, 1, -1, 0]).tolist() == [0, 2, 1, 3, 0]
    assert with_singletons([-1, -1]).tolist() == [0, 1]


def test_hand_worked_example():
    # eps:   A = {0,1,2,3} {4,5} {6 outlier}
    # tight: {0,1} {2 out} {3 out} {4,5} {6 out}
    # loose: {0,1,2,3,4,5} {6 out}
    eps = [0, 0, 0, 0, 1, 1, -1]
    tight = [0, 0, -1, -1, 1, 1, -1]
    loose = [0, 0, 0, 0, 0, 0, -1]
    r = reliability(eps, tight, loose)
    # R_comp: i=0,1: |{0,1,2,3} n {0,1}| / |u| = 2/4; i=2,3: 1/4; i=4,5: 2/2; i=6: 1/1
    np.testing.assert_allclose(r.r_comp, [0.5, 0.5, 0.25, 0.25, 1.0, 1.0, 1.0])
    # R_indep: i=0..3: 4/6; i=4,5: 2/6; i=6: 1/1
    np.testing.assert_allclose(r.r_indep, [4 / 6] * 4 + [2 / 6] * 2 + [1.0])
    # thresholds: 0.2 x the cluster's maximum
    np.testing.assert_allclose(r.thr_comp, [0.1, 0.2])
    np.testing.assert_allclose(r.thr_indep, [0.2 * 4 / 6, 0.2 * 2 / 6])
    assert r.reliable.tolist() == [True] * 6 + [False]
    assert r.num_reliable == 6


def test_a_sample_that_changes_cluster_is_unreliable():
    # eps: cluster 0 = {0..9}, outliers 10..19. Tight: sample 9 drops out. Loose: sample 9 (a
    # border point) joins the outliers' new cluster {9..19} instead of staying with {0..8}.
    eps = [0] * 10 + [-1] * 10
    tight = [0] * 9 + [-1] + [-1] * 10
    loose = [0] * 9 + [1] + [1] * 10
    r = reliability(eps, tight, loose)
    np.testing.assert_allclose(r.r_comp[:10], [0.9] * 9 + [0.1])          # 9/10, 1/10
    np.testing.assert_allclose(r.r_indep[:10], [0.9] * 9 + [1 / 20])      # 9/10, 1/|{0..19}|
    np.testing.assert_allclose(r.r_indep[10:], [1 / 11] * 10)             # {i} vs {9..19}
    np.testing.assert_allclose(r.thr_comp, [0.18])
    np.testing.assert_allclose(r.thr_indep, [0.18])
    assert r.reliable.tolist() == [True] * 9 + [False] * 11


def test_a_coarsening_loose_clustering_keeps_every_member():
    # When the loose clustering only merges eps clusters, R_indep is the same for all members
    # of a cluster, hence >= 0.2 x its maximum: every clustered sample is reliable.
    eps = [0] * 10 + [-1]
    tight = [0] * 9 + [-1, -1]
    loose = [0] * 11
    r = reliability(eps, tight, loose)
    assert r.r_comp[9] < r.thr_comp[0]  # R_comp alone would reject sample 9 (0.1 < 0.18) ...
    np.testing.assert_allclose(r.r_indep[:10], 10 / 11)  # ... but R_indep is 10/11 for every member
    assert r.reliable.tolist() == [True] * 10 + [False]


def original_formula(labels, other):
    """The released code: N x N same-label matrices, sum(min) / sum(max) per row."""
    a = torch.as_tensor(with_singletons(labels))
    b = torch.as_tensor(with_singletons(other))
    n = len(a)
    sa = a.expand(n, n).eq(a.expand(n, n).t()).float()
    sb = b.expand(n, n).eq(b.expand(n, n).t()).float()
    return (torch.min(sa, sb).sum(-1) / torch.max(sa, sb).sum(-1)).numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counting_equals_the_original_dense_formula(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-1, 6, size=80)
    b = rng.integers(-1, 9, size=80)
    np.testing.assert_allclose(iou_per_sample(with_singletons(a), with_singletons(b)), original_formula(a, b),
                               rtol=1e-6)
