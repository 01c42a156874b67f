"""The evaluator against hand-worked cases and against a slow reference written here."""
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from common_eval import EvaluationError, evaluate
from common_eval.rank import distance_block


def one_query(order_matches, n_gallery_extra=0):
    """A single query (pid 1, cam 0) whose valid ranked list is `order_matches` (1 = true match)."""
    n = len(order_matches)
    dist = np.arange(n, dtype=np.float32)[None, :] / n
    g_pids = np.where(np.asarray(order_matches) == 1, 1, 2 + np.arange(n))
    g_cams = np.ones(n, dtype=int)
    return dist, np.array([1]), g_pids, np.array([0]), g_cams


# ----------------------------------------------------------------------------- hand-worked cases

def test_toy_list_all_flavours():
    # hits at ranks 2, 5, 6, 10 of 10 (torchreid 0.450 vs MATLAB 0.348)
    r = evaluate(*one_query([0, 1, 0, 0, 1, 1, 0, 0, 0, 1]), max_rank=10)
    assert r.mAP == pytest.approx((1 / 2 + 2 / 5 + 3 / 6 + 4 / 10) / 4)  # 0.45
    trap = ((0 / 1 + 1 / 2) / 2 + (1 / 4 + 2 / 5) / 2 + (2 / 5 + 3 / 6) / 2 + (3 / 9 + 4 / 10) / 2) / 4
    assert r.mAP_by_flavour["trapezoid"] == pytest.approx(trap)  # 0.3479
    assert round(trap, 3) == 0.348
    assert r.mAP_by_flavour["sklearn018"] == pytest.approx(trap)
    assert r.mINP == pytest.approx(4 / 10)
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    assert r.num_valid_queries == 1


def test_first_hit_at_rank_one_trapezoid_uses_precision_one_before():
    r = evaluate(*one_query([1, 0, 1]), max_rank=3)
    # hit 1 at rank 1: (1 + 1)/2; hit 2 at rank 3: (1/2 + 2/3)/2
    assert r.mAP_by_flavour["trapezoid"] == pytest.approx((1.0 + (0.5 + 2 / 3) / 2) / 2)
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2)


def test_junk_and_same_camera_removal_and_distractors():
    # query pid 0 cam 0; gallery: pid 1 (c1), pid 0 (c1, true match), pid 1 (c1),
    # pid 0 (c0: same pid same camera -> removed), pid -1 (junk, removed), pid 0000 -> distractor
    dist = np.array([[0.1, 0.2, 0.3, 0.05, 0.01, 0.15]], dtype=np.float32)
    q_pids, q_cams = np.array([5]), np.array([0])
    g_pids = np.array([1, 5, 1, 5, -1, 0])
    g_cams = np.array([1, 1, 1, 0, 1, 1])
    r = evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=4)
    # valid ranked list: g0 (0.1), g5 distractor (0.15), g1 match (0.2), g2 (0.3)
    assert r.mAP == pytest.approx(1 / 3)
    assert r.mAP_by_flavour["trapezoid"] == pytest.approx((0 + 1 / 3) / 2)
    np.testing.assert_allclose(r.cmc, [0, 0, 1, 1])


def test_query_without_match_is_skipped_and_nan():
    dist = np.array([[0.1, 0.2], [0.3, 0.1]], dtype=np.float32)
    # query 1 (pid 7) has its only gallery image in its own camera
    r = evaluate(dist, [3, 7], [3, 7], [0, 1], [1, 1], max_rank=2)
    assert r.num_valid_queries == 1
    assert np.isnan(r.ap_per_query[1]) and r.ap_per_query[0] == pytest.approx(1.0)
    assert r.mAP == pytest.approx(1.0)


def test_ties_broken_by_gallery_index():
    g_pids, g_cams = np.array([2, 1]), np.array([1, 1])
    r = evaluate(np.array([[0.5, 0.5]], np.float32), [1], g_pids, [0], g_cams, max_rank=2)
    assert r.cmc[0] == 0 and r.mAP == pytest.approx(0.5)  # the negative has the lower index
    r = evaluate(np.array([[0.5, 0.5]], np.float32), [1], g_pids[::-1], [0], g_cams, max_rank=2)
    assert r.cmc[0] == 1 and r.mAP == pytest.approx(1.0)


def test_allshots_cmc_open_reid():
    # Open-ReID first_match_break=False: each of n hits adds 1/n at (its rank - hits before it)
    r = evaluate(*one_query([0, 1, 0, 0, 1, 1, 0, 0, 0, 1]), max_rank=8, first_match_break=False)
    # non-matches before each hit: 1, 3, 3, 6
    np.testing.assert_allclose(r.cmc, np.cumsum([0, .25, 0, .5, 0, 0, .25, 0]))


def test_separate_camera_set_affects_cmc_only():
    # query cam 0; gallery: g0 pid 9 cam 0 (same camera negative), g1 match cam 1
    dist = np.array([[0.1, 0.2]], np.float32)
    args = (dist, [1], [9, 1], [0], [0, 1])
    plain = evaluate(*args, max_rank=2)
    sep = evaluate(*args, max_rank=2, separate_camera_set=True)
    np.testing.assert_allclose(plain.cmc, [0, 1])
    np.testing.assert_allclose(sep.cmc, [1, 1])
    assert sep.mAP == plain.mAP == pytest.approx(0.5)  # Open-ReID's mean_ap ignores the option


def test_single_gallery_shot_deterministic_when_one_item_per_identity():
    dist = np.array([[0.3, 0.1, 0.2]], np.float32)
    r = evaluate(dist, [1], [1, 2, 3], [0], [1, 1, 1], max_rank=3, single_gallery_shot=True)
    np.testing.assert_allclose(r.cmc, [0, 0, 1])


def test_single_gallery_shot_averages_repeats_and_is_seeded():
    # identity 2 has two images, one before and one after the match: rank 2 half the time
    dist = np.array([[0.1, 0.2, 0.3]], np.float32)
    a = evaluate(dist, [1], [2, 1, 2], [0], [1, 1, 1], max_rank=2, single_gallery_shot=True,
                 num_repeats=400, seed=3)
    b = evaluate(dist, [1], [2, 1, 2], [0], [1, 1, 1], max_rank=2, single_gallery_shot=True,
                 num_repeats=400, seed=3)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert 0.4 < a.cmc[0] < 0.6 and a.cmc[1] == 1.0


def test_max_rank_larger_than_gallery_warns_and_clamps():
    with pytest.warns(UserWarning, match="clamped"):
        r = evaluate(*one_query([0, 1, 0]), max_rank=50)
    assert len(r.cmc) == 3


def test_metrics_record_in_percent():
    m = evaluate(*one_query([0, 1]), max_rank=2).metrics("trapezoid")
    assert m == {"ap": "trapezoid", "mAP": 25.0, "rank1": 0.0, "rank5": 100.0, "rank10": 100.0,
                 "mINP": 50.0}


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("kwargs, message", [
    (dict(distmat=np.zeros(3)), "2-D"),
    (dict(distmat=np.zeros((0, 3))), "query set is empty"),
    (dict(distmat=np.zeros((2, 0))), "gallery is empty"),
    (dict(distmat=np.zeros((2, 3)), q_pids=[1]), "q_pids has 1 entries"),
    (dict(distmat=np.zeros((2, 3)), g_camids=[0, 0]), "g_camids has 2 entries"),
    (dict(distmat=np.zeros((2, 3)), q_pids=[0.5, 1]), "integers"),
    (dict(distmat=np.zeros((2, 3)), ap="matlab"), "unknown AP flavour"),
    (dict(distmat=np.zeros((2, 3)), q_pids=None), "q_pids is required"),
])
def test_bad_input_messages(kwargs, message):
    base = dict(distmat=np.zeros((2, 3)), q_pids=[1, 2], g_pids=[1, 2, 3], q_camids=[0, 0],
                g_camids=[1, 1, 1])
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluate(base.pop("distmat"), **base)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 2])  # a valid query's row, and a skipped query's row
def test_non_finite_distances(bad, where):
    dist = np.random.default_rng(0).random((3, 40)).astype(np.float32)
    dist[where, 37] = bad
    q_pids = [1, 2, 99]
    g_pids = np.arange(40) % 5
    with pytest.raises(ValueError, match=f"NaN or inf .*row {where}"):
        evaluate(dist, q_pids, g_pids, [0, 0, 0], np.ones(40, int))


def test_no_valid_query_is_an_error():
    # query ids absent from the gallery: a data problem, EvaluationError (a ValueError)
    with pytest.raises(EvaluationError, match="no valid query"):
        evaluate(np.zeros((1, 2)), [1], [2, 3], [0], [1, 1])


def test_data_problems_are_evaluation_errors_and_argument_problems_are_not():
    g = np.random.default_rng(0).random((4, 8)).astype(np.float32)
    with pytest.raises(EvaluationError, match="query_features is empty"):
        evaluate(query_features=np.zeros((0, 8)), gallery_features=g, q_pids=[], g_pids=[1] * 4,
                 q_camids=[], g_camids=[1] * 4)
    with pytest.raises(EvaluationError, match="NaN or inf"):
        evaluate(np.full((1, 2), np.nan), [1], [1, 2], [0], [1, 1])
    with pytest.raises(ValueError) as info:
        evaluate(np.zeros((1, 2)), [1], [1, 2], [0], [1, 1], ap="nope")
    assert not isinstance(info.value, EvaluationError)


@pytest.mark.parametrize("name", ["num_threads", "block_rows"])
@pytest.mark.parametrize("bad", [-1, -3, 0, 1.5, True])
def test_threads_and_block_rows_must_be_positive(name, bad):
    """num_threads=-1 used to reach OpenMP (libgomp aborted the process: 'Out of memory allocating
    962072675424 bytes'); block_rows=-3 gave a numpy message. Both are ValueErrors now, raised
    before any work, for the matrix and the feature path alike."""
    rng = np.random.default_rng(1)
    qf, gf = rng.random((3, 4)).astype(np.float32), rng.random((6, 4)).astype(np.float32)
    ids = dict(q_pids=[0, 1, 2], g_pids=[0, 1, 2, 0, 1, 2], q_camids=[0] * 3, g_camids=[1] * 6)
    with pytest.raises(ValueError, match=f"{name} must be None \\(the default\\) or an integer >= 1"):
        evaluate(query_features=qf, gallery_features=gf, **ids, **{name: bad})
    if name == "num_threads":
        with pytest.raises(ValueError, match="num_threads must be"):
            evaluate(rng.random((3, 6)), **ids, num_threads=bad)


def test_threads_and_block_rows_accept_their_defaults_and_positive_values():
    rng = np.random.default_rng(2)
    qf, gf = rng.random((3, 4)).astype(np.float32), rng.random((6, 4)).astype(np.float32)
    ids = dict(q_pids=[0, 1, 2], g_pids=[0, 1, 2, 0, 1, 2], q_camids=[0] * 3, g_camids=[1] * 6)
    ref = evaluate(query_features=qf, gallery_features=gf, **ids).metrics()
    for kw in ({"num_threads": 1}, {"num_threads": 2}, {"block_rows": 1}, {"block_rows": np.int64(2)}):
        assert evaluate(query_features=qf, gallery_features=gf, **ids, **kw).metrics() == ref


def test_feature_input_errors():
    with pytest.raises(ValueError, match="dimension"):
        evaluate(query_features=np.zeros((2, 3)), gallery_features=np.zeros((2, 4)),
                 q_pids=[1, 1], g_pids=[1, 1], q_camids=[0, 0], g_camids=[1, 1])
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate(query_features=np.full((2, 3), np.nan), gallery_features=np.zeros((2, 3)),
                 q_pids=[1, 1], g_pids=[1, 1], q_camids=[0, 0], g_camids=[1, 1])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate(query_features=np.zeros((2, 3)), gallery_features=np.zeros((2, 3)), metric="l1",
                 q_pids=[1, 1], g_pids=[1, 1], q_camids=[0, 0], g_camids=[1, 1])


def test_missing_extension_is_an_error_not_a_fallback():
    code = ("import sys; sys.modules['common_eval._rank'] = None\n"
            "try:\n    import common_eval\nexcept ImportError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("ERR") and "reproduce.sh setup" in out


# ------------------------------------------------------------- agreement with a slow reference

def slow_reference(dist, qp, gp, qc, gc, max_rank, separate=False):
    """Per query: stable sort, drop junk, then the textbook formulas. Written independently."""
    step, trap, inp, first_rank, shots, n_valid = [], [], [], [], np.zeros(max_rank), 0
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        junk = ((gp[order] == qp[i]) & (gc[order] == qc[i])) | (gp[order] == -1)
        matches = (gp[order] == qp[i]) & ~junk
        if not matches.any():
            step.append(np.nan), trap.append(np.nan), inp.append(np.nan)
            continue
        n_valid += 1
        m = matches[~junk].astype(int)
        hits = np.flatnonzero(m) + 1
        j = np.arange(1, len(hits) + 1)
        step.append(np.mean(j / hits))
        before = np.where(hits == 1, 1.0, (j - 1) / np.maximum(hits - 1, 1))
        trap.append(np.mean((before + j / hits) / 2))
        inp.append(len(hits) / hits[-1])
        same_cam = gc[order] == qc[i]
        keep_cmc = ~junk & (~same_cam if separate else np.ones_like(junk))
        first_rank.append(np.flatnonzero(matches[keep_cmc])[0] + 1)
        for jj, k in enumerate(np.flatnonzero(matches[~junk])):
            if k - jj < max_rank:
                shots[k - jj] += 1 / len(hits)
    cmc = np.array([np.mean(np.array(first_rank) <= k) for k in range(1, max_rank + 1)])
    return np.array(step), np.array(trap), np.array(inp), cmc, np.cumsum(shots) / n_valid


def random_problem(seed, Q=60, G=300, ties=False, dtype=np.float32):
    rng = np.random.default_rng(seed)
    qp = rng.integers(0, 20, Q)
    gp = rng.integers(-1, 20, G)
    qc, gc = rng.integers(0, 4, Q), rng.integers(0, 4, G)
    dist = rng.random((Q, G))
    if ties:
        dist = np.round(dist * 8) / 8  # heavy ties
    return dist.astype(dtype), qp, gp, qc, gc


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_agrees_with_slow_reference(ties, dtype):
    dist, qp, gp, qc, gc = random_problem(1, ties=ties, dtype=dtype)
    step, trap, inp, cmc, shots = slow_reference(dist, qp, gp, qc, gc, 20)
    r = evaluate(dist, qp, gp, qc, gc, max_rank=20)
    np.testing.assert_allclose(r.ap_per_query, step, atol=1e-12)
    np.testing.assert_allclose(r.inp_per_query, inp, atol=1e-12)
    assert r.mAP_by_flavour["trapezoid"] == pytest.approx(np.nanmean(trap), abs=1e-12)
    np.testing.assert_allclose(r.cmc, cmc, atol=1e-12)
    r_shots = evaluate(dist, qp, gp, qc, gc, max_rank=20, first_match_break=False)
    np.testing.assert_allclose(r_shots.cmc, shots, atol=1e-12)
    _, _, _, cmc_sep, _ = slow_reference(dist, qp, gp, qc, gc, 20, separate=True)
    r_sep = evaluate(dist, qp, gp, qc, gc, max_rank=20, separate_camera_set=True)
    np.testing.assert_allclose(r_sep.cmc, cmc_sep, atol=1e-12)


def test_stepwise_equals_sklearn_and_sklearn018_equals_pr_curve_area_without_ties():
    dist, qp, gp, qc, gc = random_problem(2)
    r = evaluate(dist, qp, gp, qc, gc, max_rank=20)
    for i in np.flatnonzero(~np.isnan(r.ap_per_query)):
        valid = (gp != -1) & ~((gp == qp[i]) & (gc == qc[i]))
        y, score = (gp[valid] == qp[i]).astype(int), -dist[i][valid]
        assert r.ap_per_query[i] == pytest.approx(average_precision_score(y, score), abs=1e-6)
    old = evaluate(dist, qp, gp, qc, gc, max_rank=20, ap="sklearn018")
    for i in np.flatnonzero(~np.isnan(old.ap_per_query)):
        valid = (gp != -1) & ~((gp == qp[i]) & (gc == qc[i]))
        precision, recall, _ = precision_recall_curve((gp[valid] == qp[i]).astype(int), -dist[i][valid])
        assert old.ap_per_query[i] == pytest.approx(auc(recall, precision), abs=1e-6)


def test_documented_tie_difference_with_sklearn():
    # a tie block [negative, positive] at the top: sklearn makes it one PR point (precision 1/2
    # for the hit); ours ranks the lower gallery index first, exactly like a stable sort
    dist = np.array([[0.5, 0.5, 0.9]], np.float32)
    r = evaluate(dist, [1], [2, 1, 3], [0], [1, 1, 1], max_rank=3)
    assert r.mAP == pytest.approx(0.5)
    assert average_precision_score([0, 1, 0], [-0.5, -0.5, -0.9]) == pytest.approx(0.5)
    r2 = evaluate(dist, [1], [1, 2, 3], [0], [1, 1, 1], max_rank=3)
    assert r2.mAP == pytest.approx(1.0)  # sklearn still says 0.5: it cannot see gallery order
    assert average_precision_score([1, 0, 0], [-0.5, -0.5, -0.9]) == pytest.approx(0.5)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("block_rows", [1, 7, None])
def test_features_streaming_equals_matrix(metric, block_rows):
    rng = np.random.default_rng(5)
    qf, gf = rng.normal(size=(40, 16)), rng.normal(size=(300, 16))
    _, qp, gp, qc, gc = random_problem(5, Q=40, G=300)
    dm = distance_block(qf.astype(np.float32), gf.astype(np.float32), metric)
    if metric == "cosine":
        ref = 1 - (qf / np.linalg.norm(qf, axis=1, keepdims=True)) @ (
            gf / np.linalg.norm(gf, axis=1, keepdims=True)).T
    else:
        ref = ((qf[:, None, :] - gf[None]) ** 2).sum(-1)
        ref = np.sqrt(ref) if metric == "euclidean" else ref
    np.testing.assert_allclose(dm, ref, atol=1e-4)
    a = evaluate(dm, qp, gp, qc, gc, max_rank=10)
    b = evaluate(query_features=qf, gallery_features=gf, metric=metric, q_pids=qp, g_pids=gp,
                 q_camids=qc, g_camids=gc, max_rank=10, block_rows=block_rows,
                 single_gallery_shot=False)
    np.testing.assert_array_equal(a.ap_per_query, b.ap_per_query)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    sa = evaluate(dm, qp, gp, qc, gc, max_rank=10, single_gallery_shot=True)
    sb = evaluate(query_features=qf, gallery_features=gf, metric=metric, q_pids=qp, g_pids=gp,
                  q_camids=qc, g_camids=gc, max_rank=10, block_rows=block_rows,
                  single_gallery_shot=True)
    np.testing.assert_array_equal(sa.cmc, sb.cmc)


def test_independent_of_thread_count():
    dist, qp, gp, qc, gc = random_problem(9, Q=500, G=2000)
    a = evaluate(dist, qp, gp, qc, gc, num_threads=1, first_match_break=False)
    b = evaluate(dist, qp, gp, qc, gc, num_threads=2, first_match_break=False)
    np.testing.assert_array_equal(a.ap_per_query, b.ap_per_query)
    np.testing.assert_array_equal(a.cmc, b.cmc)
