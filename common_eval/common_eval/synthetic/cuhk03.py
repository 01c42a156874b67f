"""CUHK03 in both forms its users meet, describing the same images.

1. Official files: CUHK03/cuhk03_release/cuhk-03.mat (MATLAB v7.3) with `detected` and `labeled`
   (one cell per camera pair; each a n_pids x 10 cell of HxWx3 uint8 images, columns 1-5 = view 1,
   6-10 = view 2, unused columns empty) and `testsets` (20 classic splits of [pair, pid] rows), plus
   the new-protocol split files CUHK03/cuhk03_new_protocol_config_{detected,labeled}.mat
   (int32 train_idx, query_idx, gallery_idx 1-based into filelist; labels; camId; filelist of
   `{pair}_{pid:03d}_{view}_{col:02d}.png`, in pair -> pid -> column order).
2. The PUL author's repackaging of the *detected* images under the new protocol:
   CUHK03/{bounding_box_train,bbox_train,bbox_test,query}/ + train.list, 50train.list,
   25train.list, query.list, test.list.

Mapping between the two (what a converter must produce): the image at filelist[i] =
`{pair}_{pid:03d}_{view}_{col:02d}.png` is `{labels[i]:04d}_c{view}_f{col:02d}.jpg`; train_idx
images go to bounding_box_train/ and bbox_train/, query_idx to query/, gallery_idx to bbox_test/.
labels are global person numbers 1..N in pair -> pid order. Labeled images are the same shots as
the detected ones with a tighter box (no detector crop error).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import render
from .matlab import MatV73Writer, savemat_v5
from .plan import Shot, World, render_shots, summary

COLS = 10          # 5 per view
DETECTOR_ERROR = 6  # extra crop jitter (px) of the detected boxes


def write_cuhk03(out: Path, world: World, ids: int, test_ids: int) -> dict:
    rng = world.rng
    root = out / "CUHK03"
    n_pairs = len(world.cams) // 2            # physical cameras 2p-1 (view 1) and 2p (view 2)
    n = ids + test_ids
    figs = world.new_figures(n)
    is_test = np.zeros(n, bool)
    is_test[rng.choice(n, size=test_ids, replace=False)] = True
    pair_of = np.sort(np.arange(n) % n_pairs)  # persons 0..n-1, numbered pair by pair
    persons = []   # (label, pair, pid_in_pair, test?, {col: Shot})
    for i in range(n):
        pair = int(pair_of[i]) + 1
        pid_in_pair = int(np.sum(pair_of[:i] == pair_of[i])) + 1
        real = not isinstance(world.shape.per_cam, int)   # a (lo, hi) range per view: every view kept
        if real:
            lo, hi = world.shape.per_cam
            k = [int(rng.integers(max(lo, 2 if is_test[i] else 1), hi + 1)) for _ in range(2)]
        elif is_test[i]:   # test persons need >= 2 images per view (a query and a gallery image)
            k = [int(rng.integers(2, 4)), int(rng.integers(2, 4))]
        else:
            k = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
            if rng.random() < 0.1:
                k[int(rng.integers(2))] = 0
        cells = {}
        for view in (1, 2):
            for j in range(k[view - 1]):
                col = (view - 1) * 5 + j + 1
                cells[col] = Shot(figs[i], i + 1, 2 * (pair - 1) + view, 0, 1, world.seed())
        persons.append((i + 1, pair, pid_in_pair, bool(is_test[i]), cells))

    shots = [s for p in persons for s in p[4].values()]
    detected = render_shots(world, shots, extra_crop=DETECTOR_ERROR, keep=True)
    labeled = render_shots(world, shots, keep=True)
    img_det = {id(s): im[0] for s, im in zip(shots, detected)}
    img_lab = {id(s): im[0] for s, im in zip(shots, labeled)}

    # ---- official .mat files
    release = root / "cuhk03_release"
    release.mkdir(parents=True, exist_ok=True)
    mat = MatV73Writer(release / "cuhk-03.mat")
    for key, images in (("detected", img_det), ("labeled", img_lab)):
        pair_refs = []
        for pair in range(1, n_pairs + 1):
            rows = []
            for _, p, _, _, cells in persons:
                if p == pair:
                    rows.append([mat.array(images[id(cells[c])], compress=True) if c in cells else mat.empty()
                                 for c in range(1, COLS + 1)])
            pair_refs.append([mat.cell_ref(rows)])
        mat.cell(key, pair_refs)               # MATLAB 5x1 cell -> h5py shape (1, 5)
    n_classic = min(100, max(2, n // 10))
    splits = []
    for _ in range(20):
        chosen = rng.choice(n, size=n_classic, replace=False)
        rows = np.asarray(sorted((persons[i][1], persons[i][2]) for i in chosen), np.float64)
        splits.append([mat.array(rows)])
    mat.cell("testsets", splits)
    mat.close()

    # ---- new protocol: filelist in pair -> pid -> column order
    filelist, labels, cams, kinds = [], [], [], []
    query_ids = set()
    for label, pair, pid, test, cells in persons:
        if test:  # one query per view, chosen at random
            for view in (1, 2):
                cols = [c for c in cells if (c - 1) // 5 + 1 == view]
                query_ids.add(id(cells[cols[int(rng.integers(len(cols)))]]))
        for col in sorted(cells):
            view = (col - 1) // 5 + 1
            filelist.append(f"{pair}_{pid:03d}_{view}_{col:02d}.png")
            labels.append(label)
            cams.append(view)
            kinds.append("train" if not test else ("query" if id(cells[col]) in query_ids else "gallery"))
    # integer arrays (int32): loaders index filelist / labels with these values directly
    idx = {k: np.asarray([[i + 1] for i, kk in enumerate(kinds) if kk == k], np.int32) for k in
           ("train", "query", "gallery")}
    cell = np.empty((len(filelist), 1), dtype=object)
    for i, f in enumerate(filelist):
        cell[i, 0] = f
    for key in ("detected", "labeled"):
        savemat_v5(root / f"cuhk03_new_protocol_config_{key}.mat", {
            "train_idx": idx["train"], "query_idx": idx["query"], "gallery_idx": idx["gallery"],
            "labels": np.asarray(labels, np.int32)[:, None], "camId": np.asarray(cams, np.int32)[:, None],
            "filelist": cell})

    # ---- the PUL author's folders and lists (detected images)
    ordered = [s for p in persons for _, s in sorted(p[4].items())]
    names = {}
    for s, f in zip(ordered, filelist):
        _, _, view, col = f[:-4].split("_")
        names[id(s)] = f"{s.pid:04d}_c{view}_f{col}.jpg"
    by_kind = {k: [s for s, kk in zip(ordered, kinds) if kk == k] for k in ("train", "query", "gallery")}
    for sub, kind in (("bounding_box_train", "train"), ("bbox_train", "train"), ("bbox_test", "gallery"),
                      ("query", "query")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for s in by_kind[kind]:
            (root / sub / names[id(s)]).write_bytes(render.jpeg_bytes(img_det[id(s)]))
    train_names = sorted(names[id(s)] for s in by_kind["train"])
    train_pids = sorted({int(f[:4]) for f in train_names})
    label_of = {p: i for i, p in enumerate(train_pids)}
    for fname, keep in (("train.list", len(train_pids)), ("50train.list", 50), ("25train.list", 25)):
        lines = []
        for f in train_names:
            lab = label_of[int(f[:4])]
            lines.append(f"{f} {lab if lab < keep else -1}\n")
        (root / fname).write_text("".join(lines))
    for fname, kind in (("query.list", "query"), ("test.list", "gallery")):
        (root / fname).write_text("".join(f + "\n" for f in sorted(names[id(s)] for s in by_kind[kind])))
    stats = {k: summary(v) for k, v in by_kind.items()}
    for v in stats.values():   # camera labels are the views (1, 2)
        v["cams"] = 2
    stats["pairs"] = n_pairs
    return stats
