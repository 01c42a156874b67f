"""The evaluator's two per-row paths (candidates bucketed one by one; counts over the whole row)
against a slow reference written here that ranks by explicit pairwise comparisons."""
import numpy as np
import pytest

import common_eval.rank as rank_module
from common_eval import evaluate


def pairwise_reference(dist, qp, gp, qc, gc, max_rank, separate=False):
    """For every true match, its rank = 1 + the valid items strictly before it in the order
    (distance, gallery index), counted with an explicit comparison against every gallery item.
    Returns per-query stepwise AP, trapezoid AP, INP (NaN without a true match), first-match
    CMC, all-shots CMC and the CMC under separate_camera_set."""
    Q, G = dist.shape
    idx = np.arange(G)
    step, trap, inp = np.full(Q, np.nan), np.full(Q, np.nan), np.full(Q, np.nan)
    first, first_sep, shots = [], [], np.zeros(max_rank)
    for i in range(Q):
        valid = (gp != -1) & ~((gp == qp[i]) & (gc == qc[i]))
        true = valid & (gp == qp[i]) if qp[i] != -1 else np.zeros(G, bool)
        if not true.any():
            continue
        d = dist[i]
        ranks = []
        for g in np.flatnonzero(true):
            ahead = (d < d[g]) | ((d == d[g]) & (idx < g))
            ranks.append(1 + int(np.sum(ahead & valid)))
        ranks = np.sort(np.array(ranks))
        n = len(ranks)
        j = np.arange(1, n + 1)
        step[i] = np.mean(j / ranks)
        before = np.array([1.0 if r == 1 else (k - 1) / (r - 1) for k, r in zip(j, ranks)])
        trap[i] = np.mean((before + j / ranks) / 2)
        inp[i] = n / ranks[-1]
        first.append(ranks[0])
        for k, r in zip(j, ranks):  # all-shots: rank among non-matches only
            if r - k < max_rank:
                shots[r - k] += 1 / n
        keep = valid & (gc != qc[i])
        g0 = np.flatnonzero(true)
        first_sep.append(1 + min(int(np.sum(((d < d[g]) | ((d == d[g]) & (idx < g))) & keep))
                                 for g in g0))
    n_valid = int(np.sum(~np.isnan(step)))

    def curve(f):
        return np.array([np.sum(np.array(f) <= k) / n_valid for k in range(1, max_rank + 1)])

    return step, trap, inp, curve(first), np.cumsum(shots) / n_valid, curve(first_sep)


def problem(seed, Q, G, ties, dtype, ids=12, junk=True):
    rng = np.random.default_rng(seed)
    qp = rng.integers(0, ids, Q)
    gp = rng.integers(-1 if junk else 0, ids, G)
    qc, gc = rng.integers(0, 3, Q), rng.integers(0, 3, G)
    dist = rng.random((Q, G))
    if ties:
        dist = np.round(dist * 16) / 16  # many exact ties, also between true matches
    return dist.astype(dtype), qp, gp, qc, gc


@pytest.fixture(params=[0, 1, 2], ids=["auto", "candidates", "counting"])
def path(request, monkeypatch):
    monkeypatch.setattr(rank_module, "_PATH", request.param)
    return request.param


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_flavour_equals_pairwise_reference(path, ties, dtype):
    dist, qp, gp, qc, gc = problem(11, 40, 700, ties, dtype)
    dist[:5] = np.sort(dist[:5], axis=1)  # rows where the true matches rank anywhere in order
    step, trap, inp, cmc, shots, cmc_sep = pairwise_reference(dist, qp, gp, qc, gc, 15)
    for ap, ref in (("stepwise", step), ("trapezoid", trap), ("sklearn018", trap)):
        r = evaluate(dist, qp, gp, qc, gc, max_rank=15, ap=ap, num_threads=2)
        np.testing.assert_allclose(r.ap_per_query, ref, atol=1e-12)
        assert r.mAP == pytest.approx(np.nanmean(ref), abs=1e-12)
        np.testing.assert_allclose(r.inp_per_query, inp, atol=1e-12)
        assert r.mINP == pytest.approx(np.nanmean(inp), abs=1e-12)
        np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
    r = evaluate(dist, qp, gp, qc, gc, max_rank=15, first_match_break=False)
    np.testing.assert_allclose(r.cmc, shots, atol=1e-12)
    r = evaluate(dist, qp, gp, qc, gc, max_rank=15, separate_camera_set=True)
    np.testing.assert_allclose(r.cmc, cmc_sep, atol=1e-12)
    np.testing.assert_allclose(r.ap_per_query, step, atol=1e-12)


def test_paths_identical_on_larger_rows_with_and_without_junk():
    # bit-identical results whatever path each row takes (auto mixes both here: rows whose
    # true matches rank early stay on the candidate path)
    for junk in (True, False):
        dist, qp, gp, qc, gc = problem(3, 120, 4000, False, np.float32, ids=40, junk=junk)
        good = qp[:, None] == gp[None, :]
        dist[:60][good[:60]] *= 0.05  # a trained-like half
        results = []
        for p in (0, 1, 2):
            rank_module._PATH = p
            try:
                results.append([evaluate(dist, qp, gp, qc, gc, max_rank=50, ap=ap,
                                         first_match_break=fmb)
                                for ap in ("stepwise", "trapezoid") for fmb in (True, False)])
            finally:
                rank_module._PATH = 0
        for a, b in zip(results[0] + results[1], results[2] * 2):
            np.testing.assert_array_equal(a.ap_per_query, b.ap_per_query)
            np.testing.assert_array_equal(a.inp_per_query, b.inp_per_query)
            np.testing.assert_array_equal(a.cmc, b.cmc)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_counting_path_reports_non_finite_values(path, bad):
    dist, qp, gp, qc, gc = problem(4, 10, 500, False, np.float32)
    dist[3, 411] = bad  # anywhere in the row, far from the true matches
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate(dist, qp, gp, qc, gc)
