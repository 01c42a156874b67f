"""Video re-ID helpers: tracklet pooling and the two MARS gallery compositions.

Evaluation itself is the image protocol on tracklet features (``common_eval.evaluate``): a
gallery tracklet with the query's pid and camera is removed, pid -1 is junk.
"""
from __future__ import annotations

import numpy as np

MARS_GALLERIES = ("torchreid", "official")


def pool_tracklets(frame_features, tracklet_index, mode: str = "mean"):
    """Pools per-frame features (F x D) into one feature per tracklet.

    tracklet_index: for every frame, the tracklet it belongs to (0..T-1, every id present).
    Returns a T x D float32 array (mean or max over each tracklet's frames).
    """
    f = np.asarray(frame_features, dtype=np.float32)
    t = np.asarray(tracklet_index)
    if f.ndim != 2 or len(t) != len(f):
        raise ValueError(f"need F x D frame features and F tracklet indices, got {f.shape} and {t.shape}")
    T = int(t.max()) + 1 if len(t) else 0
    counts = np.bincount(t, minlength=T)
    if T == 0 or (counts == 0).any():
        raise ValueError("every tracklet 0..T-1 needs at least one frame")
    if mode == "mean":
        out = np.zeros((T, f.shape[1]), dtype=np.float64)
        np.add.at(out, t, f)
        return (out / counts[:, None]).astype(np.float32)
    if mode == "max":
        out = np.full((T, f.shape[1]), -np.inf, dtype=np.float32)
        np.maximum.at(out, t, f)
        return out
    raise ValueError(f"unknown pooling {mode!r}; valid: mean, max")


def mars_split(num_test_tracklets: int, query_idx, gallery: str = "torchreid"):
    """Query and gallery rows of MARS's track_test_info.

    query_idx: the 1-based rows of info/query_IDX.mat. gallery="torchreid" (also AuxUSL, BUC):
    every test tracklet that is not a query (9,330 on MARS; 14 query ids then have no true match
    and are skipped). gallery="official" (the MATLAB code, AP3D): every test tracklet, queries
    included (12,180); a query's own tracklet is then removed as same-pid-same-camera junk.
    Returns (query_rows, gallery_rows), 0-based.
    """
    if gallery not in MARS_GALLERIES:
        raise ValueError(f"unknown MARS gallery {gallery!r}; valid: {', '.join(MARS_GALLERIES)}")
    q = np.asarray(query_idx, dtype=np.int64).ravel() - 1
    if len(q) == 0 or q.min() < 0 or q.max() >= num_test_tracklets:
        raise ValueError(f"query_IDX must hold 1-based rows in [1, {num_test_tracklets}]")
    rows = np.arange(num_test_tracklets)
    if gallery == "official":
        return q, rows
    return q, np.setdiff1d(rows, q)
