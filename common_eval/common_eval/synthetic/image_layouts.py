"""Still-image datasets in their real layouts: Market-1501, DukeMTMC-reID, MSMT17_V1, VeRi-776.

Each writer gets the (temporary) output root and a World, writes one dataset folder and returns
its statistics (as a loader that drops pid -1 would report them).
"""
from __future__ import annotations

from pathlib import Path

from .plan import (
    CLOCK_ORIGIN,
    DUKE_START,
    Shot,
    World,
    choose_cameras,
    image_shots,
    render_shots,
    sample_pids,
    split_all,
    summary,
)

HORIZON = 300_000     # identities enter the scene during the first 300,000 frames (about 83 min)
# images per (identity, camera) of the benchmark: Shape.per_cam = 3, below DBSCAN min_samples=4
# (calibration, 6)


def _flat(groups):
    return [s for g in groups for s in g]


def _people(world: World, pids, n_train: int):
    """Train and test identities (figures, visited cameras, images) for the given pids."""
    rng, n_cams, shape = world.rng, len(world.cams), world.shape
    figs = world.new_figures(len(pids))
    cam_sets = (choose_cameras(rng, n_train, n_cams, *shape.cams_per_id)
                + choose_cameras(rng, len(pids) - n_train, n_cams, *shape.cams_per_id))
    if shape.test_per_cam is None:
        shots = image_shots(world, figs, list(pids), cam_sets, shape.per_cam, HORIZON)
    else:   # test identities with their own count per camera
        shots = (image_shots(world, figs[:n_train], list(pids[:n_train]), cam_sets[:n_train], shape.per_cam,
                             HORIZON)
                 + image_shots(world, figs[n_train:], list(pids[n_train:]), cam_sets[n_train:],
                               shape.test_per_cam, HORIZON))
    return shots[:n_train], shots[n_train:], figs


def _random_shots(world: World, n: int, pid: int, kind: str, figs) -> list[Shot]:
    rng = world.rng
    out = []
    for f in figs[:n] if figs is not None else [-1] * n:
        cam = int(rng.integers(1, len(world.cams) + 1))
        out.append(Shot(int(f), pid, cam, int(rng.integers(0, HORIZON)), 1, world.seed(), kind))
    return out


def _write_list(path: Path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def write_market(out: Path, world: World, ids: int, test_ids: int) -> dict:
    """Market-1501-v15.09.15/{bounding_box_train,bounding_box_test,query}/PPPP_cCsS_FFFFFF_BB.jpg.
    The gallery also holds junk (pid -1: empty boxes and body fragments) and distractors (pid 0:
    poorly framed people who are not test identities)."""
    rng = world.rng
    root = out / "Market-1501-v15.09.15"
    train, test, figs = _people(world, sample_pids(rng, ids + test_ids, 1501), ids)
    query, gallery = split_all(rng, test)
    dis, junk = world.shape.value("distractors", 0.10), world.shape.value("junk", 0.12)
    n_dis, n_junk = max(1, round(dis * len(gallery))), max(1, round(junk * len(gallery)))
    gallery += _random_shots(world, n_dis, 0, "distractor_box", world.new_figures(n_dis))
    junk_figs = [int(rng.choice(figs[ids:])) if rng.random() < 0.7 else -1 for _ in range(n_junk)]
    gallery += _random_shots(world, n_junk, -1, "junk", junk_figs)
    offsets = {c: int(rng.integers(0, 50_000)) for c in world.cams}
    used = set()

    def name(s: Shot) -> str:
        local = s.t + offsets[s.cam]          # camera-local frame counter, split into sequences
        seq, frame = 1 + local // 100_000, local % 100_000
        pid = "-1" if s.pid == -1 else f"{s.pid:04d}"
        box = 1
        while f"{pid}_c{s.cam}s{seq}_{frame:06d}_{box:02d}.jpg" in used:
            box += 1
        used.add(f"{pid}_c{s.cam}s{seq}_{frame:06d}_{box:02d}.jpg")
        return f"{pid}_c{s.cam}s{seq}_{frame:06d}_{box:02d}.jpg"

    train = _flat(train)
    for sub, shots in (("bounding_box_train", train), ("bounding_box_test", gallery), ("query", query)):
        for s in shots:
            s.files = [root / sub / name(s)]
    render_shots(world, train + gallery + query)
    return {"train": summary(train), "query": summary(query), "gallery": summary(gallery)}


def write_duke(out: Path, world: World, ids: int, test_ids: int) -> dict:
    """DukeMTMC-reID/{bounding_box_train,bounding_box_test,query}/PPPP_cC_fFFFFFFF.jpg; the gallery
    holds distractor identities (seen only there); no junk. f = frame in that camera's video."""
    rng = world.rng
    root = out / "DukeMTMC-reID"
    n_dis = max(1, round(world.shape.value("distractors", 0.5) * test_ids))   # distractor identities
    pids = sample_pids(rng, ids + test_ids + n_dis, 7140)
    train, test, _ = _people(world, pids[:ids + test_ids], ids)
    query, gallery = split_all(rng, test)
    dis_cams = choose_cameras(rng, n_dis, len(world.cams), 1, 2)
    per_cam = world.shape.per_cam
    gallery += _flat(image_shots(world, world.new_figures(n_dis), list(pids[ids + test_ids:]), dis_cams,
                                 (1, per_cam if isinstance(per_cam, int) else per_cam[1]), HORIZON))
    train = _flat(train)
    for sub, shots in (("bounding_box_train", train), ("bounding_box_test", gallery), ("query", query)):
        for s in shots:
            frame = s.t + CLOCK_ORIGIN - DUKE_START[s.cam] + 1
            s.files = [root / sub / f"{s.pid:04d}_c{s.cam}_f{frame:07d}.jpg"]
    render_shots(world, train + gallery + query)
    return {"train": summary(train), "query": summary(query), "gallery": summary(gallery)}


MSMT_SLOTS = [d + p for d in ("0113", "0114", "0302", "0303") for p in ("morning", "noon", "afternoon")]


def write_msmt17(out: Path, world: World, ids: int, test_ids: int) -> dict:
    """MSMT17_V1/{train,test}/<pid4>/PPPP_III_CC_DDMMperiod_NNNN_N.jpg + list_{train,val,query,
    gallery}.txt; train and test pids are both numbered from 0; list_val takes one image of about
    30 % of the train identities."""
    rng = world.rng
    root = out / "MSMT17_V1"
    pids = list(range(ids)) + list(range(test_ids))
    train, test, _ = _people(world, pids, ids)
    query, gallery = split_all(rng, test)
    slot_len = -(-(HORIZON + 60_000) // len(MSMT_SLOTS))
    for split, groups in (("train", train), ("test", test)):
        for shots in groups:
            for idx, s in enumerate(sorted(shots, key=lambda s: s.t)):
                slot = MSMT_SLOTS[min(len(MSMT_SLOTS) - 1, s.t // slot_len)]
                count = (s.t % slot_len) // 60
                name = f"{s.pid:04d}_{idx:03d}_{s.cam:02d}_{slot}_{count:04d}_0.jpg"
                s.files = [root / split / f"{s.pid:04d}" / name]
    val = [shots[int(rng.integers(len(shots)))] for shots in train if rng.random() < 0.3]
    train = [s for s in _flat(train) if all(s is not v for v in val)]

    def lines(shots):
        return sorted(f"{s.pid:04d}/{s.files[0].name} {s.pid}" for s in shots)

    root.mkdir(parents=True, exist_ok=True)
    for fname, shots in (("list_train.txt", train), ("list_val.txt", val), ("list_query.txt", query),
                         ("list_gallery.txt", gallery)):
        _write_list(root / fname, lines(shots))
    render_shots(world, train + val + query + gallery)
    return {"train": summary(train), "val": summary(val), "query": summary(query),
            "gallery": summary(gallery)}


def write_veri(out: Path, world: World, ids: int, test_ids: int) -> dict:
    """VeRi/{image_train,image_query,image_test}/VVVV_cCCC_FFFFFFFF_N.jpg + name_*.txt and the
    official per-query gt_image.txt (same vehicle, other camera) / jk_image.txt (same vehicle, same
    camera) lists. Query images are not in image_test."""
    rng = world.rng
    root = out / "VeRi"
    train, test, _ = _people(world, sample_pids(rng, ids + test_ids, 776), ids)
    query, gallery = split_all(rng, test)
    offsets = {c: int(rng.integers(0, 50_000)) for c in world.cams}
    train = _flat(train)
    used = set()
    for sub, shots in (("image_train", train), ("image_test", gallery), ("image_query", query)):
        for s in shots:
            k = 0
            while (nm := f"{s.pid:04d}_c{s.cam:03d}_{s.t + offsets[s.cam]:08d}_{k}.jpg") in used:
                k += 1
            used.add(nm)
            s.files = [root / sub / nm]
    root.mkdir(parents=True, exist_ok=True)
    for fname, shots in (("name_train.txt", train), ("name_test.txt", gallery), ("name_query.txt", query)):
        _write_list(root / fname, sorted(s.files[0].name for s in shots))
    gt, jk = [], []
    for q in sorted(query, key=lambda s: s.files[0].name):
        same = [g for g in gallery if g.pid == q.pid]
        gt.append(" ".join(sorted(g.files[0].name for g in same if g.cam != q.cam)))
        jk.append(" ".join(sorted(g.files[0].name for g in same if g.cam == q.cam)))
    _write_list(root / "gt_image.txt", gt)
    _write_list(root / "jk_image.txt", jk)
    render_shots(world, train + gallery + query)
    return {"train": summary(train), "query": summary(query), "gallery": summary(gallery)}
