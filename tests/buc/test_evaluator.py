"""Open-ReID evaluation through common_eval on a hand-made ranking, and the learned metrics."""
from __future__ import annotations

import numpy as np
import pytest

from buc.dist_metric import DistanceMetric
from buc.evaluators import evaluate_all
from buc.metric_learning import names


def records(pids, cams):
    return [((f"{i}.jpg",), p, c, i) for i, (p, c) in enumerate(zip(pids, cams))]


def test_hand_worked_ranking(capsys):
    # 1-D features, squared distances. Gallery: g0 pid1 cam1 @0.1, g1 pid2 cam1 @0.05,
    # g2 pid1 cam0 @2.0 (same pid and camera as q0: removed for q0), g3 pid2 cam1 @0.9
    q = np.array([[0.0], [1.0]], np.float32)
    g = np.array([[0.1], [0.05], [2.0], [0.9]], np.float32)
    query, gallery = records([1, 2], [0, 0]), records([1, 2, 1, 2], [1, 1, 0, 1])
    r = evaluate_all(q, g, query, gallery, cmc_configs=("allshots", "cuhk03", "market1501"))
    # q0 ranks g1 (miss), g0 (hit), g3 (miss); q1 ranks g3 (hit), g0, g1 (hit), g2
    # step-wise AP: q0 1/2, q1 (1 + 2/3)/2; sklearn-0.18 (trapezoid): q0 (0 + 1/2)/2,
    # q1 ((1 + 1)/2 + (1/2 + 2/3)/2)/2
    assert r.metrics("stepwise")["mAP"] == pytest.approx(100 * (0.5 + 5 / 6) / 2)
    assert r.metrics("sklearn018")["mAP"] == pytest.approx(100 * (0.25 + (1 + 7 / 12) / 2) / 2)
    assert r.ap == "sklearn018"
    assert (r.rank(1), r.rank(2)) == (0.5, 1.0)
    # allshots: q0's hit adds 1 at index 1; q1's two hits add 1/2 at index 0 and 1/2 at index 1
    allshots = r.cmc_configs["allshots"]
    assert allshots.rank(1) == pytest.approx(0.25) and allshots.rank(2) == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert "Mean AP: 52.1%" in out and "allshots" in out and "cuhk03" in out and "market1501" in out


def test_buc_prints_only_market1501(capsys):
    q = np.array([[0.0]], np.float32)
    g = np.array([[0.1], [3.0]], np.float32)
    evaluate_all(q, g, records([1], [0]), records([1, 2], [1, 1]))
    out = capsys.readouterr().out
    assert "CMC Scores:" in out and "top-1         100.0%" in out and "allshots" not in out
    with pytest.raises(ValueError, match="unknown CMC config"):
        evaluate_all(q, g, records([1], [0]), records([1, 2], [1, 1]), cmc_configs=("viper",))


def separable(seed=0, n_per=12, d=6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 3
    x = np.concatenate([c + rng.normal(size=(n_per, d)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(4), n_per)


def test_kissme_learns_a_psd_metric_that_separates_clusters():
    x, y = separable()
    m = DistanceMetric("kissme")
    m.train(x, y)
    M = m.metric.M_
    assert np.allclose(M, M.T) and np.linalg.eigvalsh(M).min() >= -1e-9
    z = m.transform(x)
    assert z.shape == x.shape and z.dtype == np.float32
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    same = y[:, None] == y[None]
    assert d[same].mean() < d[~same].mean()
    with pytest.raises(ValueError, match="two samples"):
        DistanceMetric("kissme").train(x[:4], np.arange(4))       # step 0: every sample alone


def test_metric_learn_algorithms_and_euclidean():
    x, y = separable(1)
    assert np.array_equal(DistanceMetric("euclidean").transform(x), x)
    m = DistanceMetric("lfda", k=3)
    m.train(x, y)
    assert m.transform(x).shape[0] == len(x)
    assert names()[:2] == ["euclidean", "kissme"] and "lmnn" in names()
    with pytest.raises(KeyError, match="valid: euclidean, kissme"):
        DistanceMetric("mahalanobis")


def test_learned_metric_in_the_pipeline(tiny_root, capsys):
    from buc import datasets
    from buc.bottom_up import BottomUp
    from buc.models import create
    ds = datasets.create("market1501", tiny_root, verbose=False)
    bu = BottomUp(create("resnet18", pretrained="none", embedding_size=16), [r[0] for r in ds.train],
                  ds.images_dir, is_video=False, height=64, width=32, workers=0, embedding_size=16,
                  progress=False)
    n = len(ds.train)
    plain = bu.evaluate(ds.query, ds.gallery)
    r0 = bu.evaluate(ds.query, ds.gallery, metric=DistanceMetric("kissme"), labels=np.arange(n))
    assert "cannot be fitted" in capsys.readouterr().out          # step 0: documented fallback
    assert r0.mAP == plain.mAP
    pseudo = np.array([r[1] for r in ds.train])                   # any clustering with pairs
    r1 = bu.evaluate(ds.query, ds.gallery, metric=DistanceMetric("kissme"), labels=pseudo)
    assert r1.mAP != plain.mAP and 0 < r1.mAP <= 1
