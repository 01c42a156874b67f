"""Video datasets in their real layouts: MARS and DukeMTMC-VideoReID.

Tracklets live on a common 60 fps clock (frames every 12 clock ticks); an identity walks from camera
to camera, so its own tracklets never overlap in time, while other people's tracklets in the same
camera sometimes do (what time-overlap cannot-link rules use).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .matlab import savemat_v5
from .plan import (
    CLOCK_ORIGIN,
    DUKE_START,
    VIDEO_STEP,
    Shot,
    World,
    choose_cameras,
    render_shots,
    sample_pids,
    split_all,
    summary,
    tracklet_shots,
)

TRACKLETS_PER_TICK = 1 / 700  # density of tracklets per camera on the clock (sets the overlap rate)


def _flat(groups):
    return [s for g in groups for s in g]


def _horizon(n_ids: int, n_cams: int) -> int:
    return int(4.5 * n_ids / n_cams / TRACKLETS_PER_TICK)


def _video_people(world: World, pids, n_train: int, horizon: int):
    rng, n_cams, shape = world.rng, len(world.cams), world.shape
    figs = world.new_figures(len(pids))
    cam_sets = (choose_cameras(rng, n_train, n_cams, *shape.cams_per_id)
                + choose_cameras(rng, len(pids) - n_train, n_cams, *shape.cams_per_id))
    shots = tracklet_shots(world, figs, list(pids), cam_sets, horizon)
    return shots[:n_train], shots[n_train:], figs


def _odd_tracklets(world: World, pid: int, kind: str, figs, horizon: int) -> list[Shot]:
    """One tracklet per entry of figs (-1 = no figure) in a random camera, labelled pid."""
    rng = world.rng
    out = []
    for f in figs:
        cam = int(rng.integers(1, len(world.cams) + 1))
        lo, hi = world.shape.frames
        out.append(Shot(int(f), pid, cam, int(rng.integers(0, horizon)), int(rng.integers(lo, hi + 1)),
                        world.seed(), kind))
    return out


def write_mars(out: Path, world: World, ids: int, test_ids: int) -> dict:
    """MARS/{bbox_train,bbox_test}/<pid4>/PPPPCcTttttFfff.jpg + info/{train,test}_name.txt,
    tracks_{train,test}_info.mat ([start, end, pid, cam], 1-based lines) and query_IDX.mat (int32,
    as loaders index and slice with these values directly).
    bbox_test also holds 0000 (distractors) and 00-1 (junk) tracklets."""
    rng = world.rng
    root = out / "MARS"
    horizon = _horizon(ids + test_ids, len(world.cams))
    train, test, figs = _video_people(world, sample_pids(rng, ids + test_ids, 1500), ids, horizon)
    shape = world.shape
    query, gallery = split_all(rng, test, max_q=shape.value("max_query", 2))  # default: at most 2 per identity
    dis, junk = shape.value("distractors", 0.15), shape.value("junk", 0.10)
    n_dis, n_junk = max(1, round(dis * len(gallery))), max(1, round(junk * len(gallery)))
    gallery += _odd_tracklets(world, 0, "distractor_box", world.new_figures(n_dis), horizon)
    junk_figs = [int(rng.choice(figs[ids:])) if rng.random() < 0.7 else -1 for _ in range(n_junk)]
    gallery += _odd_tracklets(world, -1, "junk", junk_figs, horizon)
    train = _flat(train)

    info = root / "info"
    info.mkdir(parents=True, exist_ok=True)
    for split, shots in (("train", train), ("test", query + gallery)):
        counter: dict = {}
        for s in sorted(shots, key=lambda s: (s.pid, s.cam, s.t)):
            counter[(s.pid, s.cam)] = tk = counter.get((s.pid, s.cam), 0) + 1
            pid = "00-1" if s.pid == -1 else f"{s.pid:04d}"
            s.files = [root / f"bbox_{split}" / pid / f"{pid}C{s.cam}T{tk:04d}F{i + 1:03d}.jpg"
                       for i in range(s.n)]
        ordered = sorted(shots, key=lambda s: s.files[0].name)
        names, rows, line = [], [], 1
        for s in ordered:
            names += [f.name for f in s.files]
            rows.append([line, line + s.n - 1, s.pid, s.cam])
            line += s.n
        (info / f"{split}_name.txt").write_text("".join(n + "\n" for n in names))
        key = f"track_{split}_info"
        savemat_v5(info / f"tracks_{split}_info.mat", {key: np.asarray(rows, np.int32)})
        if split == "test":
            qset = {id(q) for q in query}
            idx = [i + 1 for i, s in enumerate(ordered) if id(s) in qset]
            savemat_v5(info / "query_IDX.mat", {"query_IDX": np.asarray([idx], np.int32)})
    render_shots(world, train + query + gallery)
    return {"train": summary(train, "tracklets"), "query": summary(query, "tracklets"),
            "gallery": summary(gallery, "tracklets")}


def write_dukevideo(out: Path, world: World, ids: int, test_ids: int) -> dict:
    """DukeMTMC-VideoReID/{train,query,gallery}/<pid4>/<tracklet4>/PPPP_CC_FFFFF_XXXXX.jpg with
    F = 1-based frame index in the tracklet and X = frame number in that camera's video
    (X = clock - DUKE_START[cam] + 1 + CLOCK_ORIGIN). One query tracklet per test identity, not in
    the gallery; the gallery holds distractor identities."""
    rng = world.rng
    root = out / "DukeMTMC-VideoReID"
    n_dis = max(1, round(world.shape.value("distractors", 0.5) * test_ids))   # distractor identities
    horizon = _horizon(ids + test_ids + n_dis, len(world.cams))
    pids = sample_pids(rng, ids + test_ids + n_dis, 7140)
    train, test, _ = _video_people(world, pids[:ids + test_ids], ids, horizon)
    query, gallery = split_all(rng, test, max_q=1)
    dis_cams = choose_cameras(rng, n_dis, len(world.cams), 1, 2)
    gallery += _flat(tracklet_shots(world, world.new_figures(n_dis), list(pids[ids + test_ids:]),
                                    dis_cams, horizon))
    train = _flat(train)
    split_of = {id(s): "train" for s in train}
    split_of.update({id(s): "query" for s in query})
    split_of.update({id(s): "gallery" for s in gallery})
    counter: dict = {}
    for s in sorted(train + query + gallery, key=lambda s: (s.pid, s.t)):
        counter[s.pid] = k = counter.get(s.pid, 0) + 1
        folder = root / split_of[id(s)] / f"{s.pid:04d}" / f"{k:04d}"
        x0 = s.t + CLOCK_ORIGIN - DUKE_START[s.cam] + 1
        s.files = [folder / f"{s.pid:04d}_C{s.cam}_F{i + 1:04d}_X{x0 + i * VIDEO_STEP:05d}.jpg"
                   for i in range(s.n)]
    render_shots(world, train + query + gallery)
    return {"train": summary(train, "tracklets"), "query": summary(query, "tracklets"),
            "gallery": summary(gallery, "tracklets"),
            "clock": {"fps": 60, "step": VIDEO_STEP,
                      "camera_start": {str(c): DUKE_START[c] for c in world.cams},
                      "rule": "global = X + camera_start[cam] - 1"}}
