"""Test-time distances (TOC +1000, SCP +0.03, STS x(1 + 0.6 e^{-8P})) against hand-worked values,
the ranking through common_eval, and tracklet pooling."""

import numpy as np
import pytest
import torch

from auxusl.data import FrameReader, build_test_transform
from auxusl.evaluation import cluster_features, evaluate_distance, query_gallery_distance, tracklet_features
from auxusl.models import create

# one query, three gallery tracklets; features on a line: q = 0, g = 1, 2, 3 -> squared distances 1, 4, 9
QF = np.array([[0.0, 0.0]], dtype=np.float32)
GF = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], dtype=np.float32)


def test_plain_squared_euclidean():
    np.testing.assert_allclose(query_gallery_distance(QF, GF), [[1, 4, 9]])


def test_toc_scp_sts_by_hand():
    toc = np.array([[1, 0, 0]])
    scp = np.array([[0, 1, 0]])
    P = np.array([[0.0, 0.5, 1.0]])
    d = query_gallery_distance(
        QF, GF, toc=toc, scp=scp, scp_lambda=0.03, sts_p=P, sts_lambda=0.6, sts_gamma=8.0
    )
    # (1 + 1000) * 1.6,  (4 + 0.03) * (1 + 0.6 e^-4),  9 * (1 + 0.6 e^-8)
    want = [1001 * 1.6, 4.03 * (1 + 0.6 * np.exp(-4)), 9 * (1 + 0.6 * np.exp(-8))]
    np.testing.assert_allclose(d[0], want, rtol=1e-6)
    np.testing.assert_allclose(query_gallery_distance(QF, GF, toc=toc)[0], [1001, 4, 9])
    np.testing.assert_allclose(query_gallery_distance(QF, GF, scp=scp, scp_lambda=0.03)[0], [1, 4.03, 9])


def test_toc_pushes_an_overlapping_match_to_the_end():
    # the true match (pid 5) is the nearest, but it overlaps the query in time: ranked last (not removed)
    query = [(("q",), 5, 0)]
    gallery = [(("a",), 5, 1), (("b",), 6, 1), (("c",), 5, 2)]
    plain = evaluate_distance(query_gallery_distance(QF, GF), query, gallery)
    assert plain.metrics()["mAP"] == pytest.approx(100 * (1 + 2 / 3) / 2)  # hits at ranks 1 and 3
    toc = evaluate_distance(query_gallery_distance(QF, GF, toc=np.array([[1, 0, 0]])), query, gallery)
    assert toc.metrics()["mAP"] == pytest.approx(100 * (1 / 2 + 2 / 3) / 2)  # order b, c, a: hits at 2, 3


def test_tracklet_features_average_every_frame(tmp_path):
    from PIL import Image

    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((16, 8, 3), 40 * i, dtype=np.uint8)).save(p)
        paths.append(str(p))
    items = [(tuple(paths[:2]), 1, 0), (tuple(paths[2:]), 2, 1)]
    tf = build_test_transform([16, 8], [0.5] * 3, [0.25] * 3)
    torch.manual_seed(0)
    m = create("resnet18bnn", 2, "none").eval()
    inference, raw = tracklet_features(m, items, tf, FrameReader(True), batch_frames=3, progress=False)
    with torch.no_grad():
        for t, (frames, _, _) in enumerate(items):
            clip = torch.stack([tf(Image.open(f).convert("RGB")) for f in frames]).unsqueeze(0)
            want_inf, want_raw = m(clip)
            np.testing.assert_allclose(inference[t], want_inf[0].numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(raw[t], want_raw[0].numpy(), rtol=1e-4, atol=1e-5)
    # clustering clips: a 2-frame tracklet cycled to 4 frames weighs both frames equally
    feats, sampled = cluster_features(m, items[:1], 4, tf, FrameReader(), progress=False)
    np.testing.assert_allclose(feats[0], raw[0], rtol=1e-4, atol=1e-5)
    assert sampled == [[0, 1]]
