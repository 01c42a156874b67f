"""The synthetic benchmark, read back with the real datasets' parsing rules (regexes, list files,
MATLAB files) as the loaders of torchreid / fast-reid / SpCL / Open-ReID / AuxUSL apply them."""
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

try:
    import common_eval  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "common_eval"))

import h5py
import scipy.io
from PIL import Image

import common_eval.synthetic as synthetic
from common_eval.synthetic import LAYOUTS, generate, generate_benchmark

IDS, TEST_IDS = 20, 16
COMMON_EVAL_DIR = Path(synthetic.__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Every layout once, at a small size, default cameras, domain a."""
    root = tmp_path_factory.mktemp("synthetic")
    return {layout: generate(layout, root, seed=3, ids=IDS, test_ids=TEST_IDS) for layout in LAYOUTS}


def jpgs(folder):
    return sorted(p.name for p in Path(folder).glob("*.jpg"))


def check_cross_camera(query, gallery):
    """query/gallery: lists of (pid, cam). Every query has a same-pid gallery item in another camera."""
    by_pid = defaultdict(set)
    for pid, cam in gallery:
        by_pid[pid].add(cam)
    for pid, cam in query:
        assert by_pid[pid] - {cam}, f"query pid {pid} cam {cam} has no cross-camera positive"


# ---------------------------------------------------------------- Market-1501 / DukeMTMC-reID
MARKET_RE = re.compile(r"([-\d]+)_c(\d)")


def parse_market_style(folder):
    out = []
    for name in jpgs(folder):
        pid, cam = map(int, MARKET_RE.search(name).groups())
        out.append((pid, cam))
    return out


def test_market1501(data):
    root = data["market1501"]
    assert root.name == "Market-1501-v15.09.15"
    assert sorted(p.name for p in root.iterdir()) == ["bounding_box_test", "bounding_box_train", "query"]
    for sub in ("bounding_box_train", "bounding_box_test", "query"):
        for name in jpgs(root / sub):
            assert re.fullmatch(r"(-1|\d{4})_c\ds\d_\d{6}_\d{2}\.jpg", name), name
    train = parse_market_style(root / "bounding_box_train")
    query = parse_market_style(root / "query")
    gallery = parse_market_style(root / "bounding_box_test")
    assert len({p for p, _ in train}) == IDS
    assert {c for _, c in train} == set(range(1, 7)) and {c for _, c in gallery} <= set(range(1, 7))
    assert len({p for p, _ in query}) == TEST_IDS
    assert not {p for p, _ in train} & {p for p, _ in query}
    gp = [p for p, _ in gallery]
    assert gp.count(-1) > 0 and gp.count(0) > 0, "the gallery must hold junk (-1) and distractors (0)"
    assert {p for p in gp if p > 0} == {p for p, _ in query}
    # one query per (test id, camera) it appears in; at most 3 images per (id, camera)
    per = defaultdict(int)
    for pid, cam in train + query + [g for g in gallery if g[0] > 0]:
        per[(pid, cam)] += 1
    assert max(per.values()) <= 3
    assert len(query) == len(set(query)) == len({k for k in per if k[0] in {p for p, _ in query}})
    check_cross_camera(query, [g for g in gallery if g[0] > 0])
    img = Image.open(root / "query" / jpgs(root / "query")[0])
    assert img.format == "JPEG" and img.size == (64, 128) and img.mode == "RGB"


def test_dukemtmcreid(data):
    root = data["dukemtmcreid"]
    assert root.name == "DukeMTMC-reID"
    for sub in ("bounding_box_train", "bounding_box_test", "query"):
        for name in jpgs(root / sub):
            assert re.fullmatch(r"\d{4}_c[1-8]_f\d{7}\.jpg", name), name
    train = parse_market_style(root / "bounding_box_train")
    query = parse_market_style(root / "query")
    gallery = parse_market_style(root / "bounding_box_test")
    assert len({p for p, _ in train}) == IDS and {c for _, c in train} == set(range(1, 9))
    assert len({p for p, _ in query}) == TEST_IDS
    assert all(p > 0 for p, _ in train + query + gallery), "Duke has no junk"
    distractors = {p for p, _ in gallery} - {p for p, _ in query}
    assert distractors and not distractors & {p for p, _ in train}
    check_cross_camera(query, gallery)


# ---------------------------------------------------------------- MSMT17
def read_msmt_list(path):
    out = []
    for line in Path(path).read_text().splitlines():
        rel, pid = line.split(" ")
        out.append((rel, int(pid)))
    return out


def test_msmt17(data):
    root = data["msmt17"]
    assert root.name == "MSMT17_V1"
    lists = {k: read_msmt_list(root / f"list_{k}.txt") for k in ("train", "val", "query", "gallery")}
    for key, base in (("train", "train"), ("val", "train"), ("query", "test"), ("gallery", "test")):
        for rel, pid in lists[key]:
            d, name = rel.split("/")
            assert (root / base / rel).is_file(), rel
            assert re.fullmatch(r"\d{4}_\d{3}_\d{2}_\d{4}(morning|noon|afternoon)_\d{4}_\d\.jpg", name), name
            assert int(d) == pid == int(name[:4])
            assert 1 <= int(name.split("_")[2]) <= 15
    # list files cover the folders exactly
    on_disk = {b: {str(p.relative_to(root / b)) for p in (root / b).rglob("*.jpg")}
               for b in ("train", "test")}
    assert {r for r, _ in lists["train"] + lists["val"]} == on_disk["train"]
    assert {r for r, _ in lists["query"] + lists["gallery"]} == on_disk["test"]
    assert len(lists["train"]) + len(lists["val"]) == len(on_disk["train"])
    assert {p for _, p in lists["train"] + lists["val"]} == set(range(IDS))      # numbered from 0
    assert {p for _, p in lists["query"]} == {p for _, p in lists["gallery"]} == set(range(TEST_IDS))
    cams = {int(r.split("/")[1].split("_")[2]) for r, _ in lists["train"] + lists["val"]}
    assert cams == set(range(1, 16))
    cam = lambda r: int(r.split("/")[1].split("_")[2])  # noqa: E731
    check_cross_camera([(p, cam(r)) for r, p in lists["query"]], [(p, cam(r)) for r, p in lists["gallery"]])


# ---------------------------------------------------------------- CUHK03
def read_cuhk03_mat(path, key):
    """torchreid's extraction: mat[key][0] = camera pairs; deref(...).T = n_pids x 10 cell."""
    mat = h5py.File(path, "r")
    images = {}
    for campid, camp_ref in enumerate(mat[key][0]):
        camp = mat[camp_ref][:].T
        for pid in range(camp.shape[0]):
            for imgid, ref in enumerate(camp[pid, :]):
                img = mat[ref][:].T
                if img.size == 0 or img.ndim < 3:
                    continue
                view = 1 if imgid < 5 else 2
                images[f"{campid + 1}_{pid + 1:03d}_{view}_{imgid + 1:02d}.png"] = img
    testsets = [mat[r][:].T.tolist() for r in mat["testsets"][0]]
    mat.close()
    return images, testsets


def read_new_protocol(path):
    """torchreid's _extract_new_split."""
    d = scipy.io.loadmat(path)
    pids = d["labels"].flatten()
    filelist = d["filelist"].flatten()
    out = {}
    for key in ("train", "query", "gallery"):
        idxs = d[f"{key}_idx"].flatten() - 1
        out[key] = [(filelist[i][0], int(pids[i]), int(filelist[i][0].split("_")[2]) - 1) for i in idxs]
    return out


def test_cuhk03_official_files(data):
    root = data["cuhk03"]
    mat_path = root / "cuhk03_release" / "cuhk-03.mat"
    assert mat_path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    with pytest.raises(NotImplementedError):   # as with the real file: scipy refuses v7.3
        scipy.io.loadmat(mat_path)
    det, testsets = read_cuhk03_mat(mat_path, "detected")
    lab, _ = read_cuhk03_mat(mat_path, "labeled")
    assert det.keys() == lab.keys()
    assert all(im.shape == (128, 64, 3) and im.dtype == np.uint8 for im in det.values())
    with h5py.File(mat_path, "r") as mat:
        assert mat["detected"].shape == (1, 5)
        cells = [mat[r][:].T for r in mat["detected"][0]]
        assert all(c.shape[1] == 10 for c in cells)
        assert sum(c.shape[0] for c in cells) == IDS + TEST_IDS
        n_empty = sum(mat[ref].attrs.get("MATLAB_empty", 0) for c in cells for ref in c.flatten())
        assert n_empty > 0
    assert len(testsets) == 20 and all(len(t[0]) == 2 for t in testsets)
    persons = {k[:5] for k in det}
    assert all(f"{int(a)}_{int(b):03d}" in persons for t in testsets for a, b in t)
    # detected and labeled are the same shots (labeled boxes are tighter)
    k = sorted(det)[0]
    assert np.abs(det[k].astype(float) - lab[k].astype(float)).mean() < 40

    for key in ("detected", "labeled"):
        split = read_new_protocol(root / f"cuhk03_new_protocol_config_{key}.mat")
        names = [n for v in split.values() for n, _, _ in v]
        assert sorted(names) == sorted(det)   # every image exactly once
        assert len({p for _, p, _ in split["train"]}) == IDS
        qp = {p for _, p, _ in split["query"]}
        assert len(qp) == TEST_IDS and qp == {p for _, p, _ in split["gallery"]}
        assert not qp & {p for _, p, _ in split["train"]}
        assert len(split["query"]) == 2 * TEST_IDS       # one per view
        assert {c for _, _, c in split["train"] + split["query"]} == {0, 1}
        check_cross_camera([(p, c) for _, p, c in split["query"]], [(p, c) for _, p, c in split["gallery"]])


def test_cuhk03_author_format_matches_mat(data):
    """The documented converter mapping: filelist[i] = {pair}_{pid}_{view}_{col}.png <->
    {labels[i]:04d}_c{view}_f{col}.jpg, detected images, train/query/gallery folders."""
    root = data["cuhk03"]
    det, _ = read_cuhk03_mat(root / "cuhk03_release" / "cuhk-03.mat", "detected")
    split = read_new_protocol(root / "cuhk03_new_protocol_config_detected.mat")
    expect = {}
    for key, folder in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bbox_test")):
        conv = {}
        for name, label, _ in split[key]:
            _, _, view, col = name[:-4].split("_")
            conv[f"{label:04d}_c{view}_f{col}.jpg"] = name
        assert jpgs(root / folder) == sorted(conv)
        expect[key] = conv
        pngs = sorted(det)
        for jpg, png in list(conv.items())[:20]:   # same pixels up to JPEG loss, unlike any other image
            a = np.asarray(Image.open(root / folder / jpg), np.float32)
            diffs = {p: np.abs(a - det[p]).mean() for p in pngs[::7] + [png]}
            assert diffs[png] < 8 and min(diffs, key=diffs.get) == png, (jpg, png)
    assert jpgs(root / "bbox_train") == jpgs(root / "bounding_box_train")
    for name in jpgs(root / "bbox_train"):
        assert (root / "bbox_train" / name).read_bytes() == (root / "bounding_box_train" / name).read_bytes()
        assert re.fullmatch(r"\d{4}_c[12]_f(0[1-9]|10)\.jpg", name)
    # list files
    lines = [ln.split(" ") for ln in (root / "train.list").read_text().splitlines()]
    assert [f for f, _ in lines] == sorted(expect["train"])
    pids = sorted({int(f[:4]) for f, _ in lines})
    assert [int(lab) for _, lab in lines] == [pids.index(int(f[:4])) for f, _ in lines]
    for fname, keep in (("50train.list", 50), ("25train.list", 25)):
        sub = [ln.split(" ") for ln in (root / fname).read_text().splitlines()]
        assert [f for f, _ in sub] == [f for f, _ in lines]
        for (_, full), (_, part) in zip(lines, sub):
            assert int(part) == (int(full) if int(full) < keep else -1)
    assert (root / "query.list").read_text().split() == sorted(expect["query"])
    assert (root / "test.list").read_text().split() == sorted(expect["gallery"])


# ---------------------------------------------------------------- VeRi-776
VERI_RE = re.compile(r"([\d]+)_c(\d\d\d)")


def test_veri776(data):
    root = data["veri776"]
    assert root.name == "VeRi"
    parsed = {}
    for sub, lst in (("image_train", "name_train.txt"), ("image_query", "name_query.txt"),
                     ("image_test", "name_test.txt")):
        names = jpgs(root / sub)
        assert (root / lst).read_text().split() == names
        for n in names:
            assert re.fullmatch(r"\d{4}_c\d{3}_\d{8}_\d\.jpg", n), n
        parsed[sub] = [tuple(map(int, VERI_RE.search(n).groups())) for n in names]
    assert len({p for p, _ in parsed["image_train"]}) == IDS
    assert {c for _, c in parsed["image_train"]} == set(range(1, 21))
    assert len({p for p, _ in parsed["image_query"]}) == TEST_IDS
    check_cross_camera(parsed["image_query"], parsed["image_test"])
    queries = (root / "name_query.txt").read_text().split()
    gt = (root / "gt_image.txt").read_text().split("\n")[:-1]
    jk = (root / "jk_image.txt").read_text().split("\n")[:-1]
    assert len(gt) == len(jk) == len(queries)
    gallery = set(jpgs(root / "image_test"))
    for q, good, junk in zip(queries, gt, jk):
        qp, qc = map(int, VERI_RE.search(q).groups())
        assert good.split()
        for g in good.split():
            gp, gc = map(int, VERI_RE.search(g).groups())
            assert g in gallery and gp == qp and gc != qc
        for g in junk.split():
            gp, gc = map(int, VERI_RE.search(g).groups())
            assert g in gallery and gp == qp and gc == qc


# ---------------------------------------------------------------- MARS
def read_mars(root):
    """torchreid's MARS loader: info names + track info (+ query_IDX), pid -1 rows dropped."""
    out = {}
    for split in ("train", "test"):
        names = (root / "info" / f"{split}_name.txt").read_text().split()
        info = scipy.io.loadmat(root / "info" / f"tracks_{split}_info.mat")[f"track_{split}_info"]
        tracks = []
        for start, end, pid, cam in info:
            frames = names[int(start) - 1:int(end)]
            assert frames
            pnames = {f[:4] for f in frames}
            assert len(pnames) == 1 and {int(f[5]) for f in frames} == {int(cam)}
            assert (-1 if frames[0][:4] == "00-1" else int(frames[0][:4])) == pid
            for f in frames:
                assert (root / f"bbox_{split}" / f[:4] / f).is_file(), f
            tracks.append((frames, int(pid), int(cam)))
        out[split] = tracks
    q_idx = scipy.io.loadmat(root / "info" / "query_IDX.mat")["query_IDX"].squeeze() - 1
    info = scipy.io.loadmat(root / "info" / "tracks_test_info.mat")["track_test_info"]
    assert info[q_idx, :].shape == (len(q_idx), 4)   # torchreid: track_test[query_IDX, :]
    q_set = set(q_idx.tolist())
    out["query"] = [out["test"][i] for i in q_idx]
    out["gallery"] = [t for i, t in enumerate(out["test"]) if i not in q_set]
    return out


def test_mars(data):
    root = data["mars"]
    assert root.name == "MARS"
    d = read_mars(root)
    for split in ("train", "test"):
        files = sorted(p.name for p in (root / f"bbox_{split}").rglob("*.jpg"))
        listed = (root / "info" / f"{split}_name.txt").read_text().split()
        assert sorted(listed) == files and len(listed) == len(set(listed))
        for f in files:
            assert re.fullmatch(r"(\d{4}|00-1)C[1-6]T\d{4}F\d{3}\.jpg", f), f
        info = scipy.io.loadmat(root / "info" / f"tracks_{split}_info.mat")[f"track_{split}_info"]
        assert info.shape[1] == 4 and info[:, 1].max() == len(listed)
    assert (root / "bbox_test" / "0000").is_dir() and (root / "bbox_test" / "00-1").is_dir()
    assert len({p for _, p, _ in d["train"]}) == IDS and {c for _, _, c in d["train"]} == set(range(1, 7))
    assert all(6 <= len(f) <= 16 for f, _, _ in d["train"])
    gp = {p for _, p, _ in d["gallery"]}
    assert -1 in gp and 0 in gp
    query = [(p, c) for _, p, c in d["query"]]
    assert all(p > 0 for p, _ in query) and len({p for p, _ in query}) == TEST_IDS
    check_cross_camera(query, [(p, c) for _, p, c in d["gallery"] if p > 0])
    # frames F001.. in order within a tracklet
    for frames, _, _ in d["train"][:20]:
        assert [int(f[12:15]) for f in frames] == list(range(1, len(frames) + 1))


# ---------------------------------------------------------------- DukeMTMC-VideoReID
def read_dukevideo(root):
    """AuxUSL / torchreid style: <split>/<pid>/<tracklet>/*.jpg; camera int(name[6])."""
    out = {}
    for split in ("train", "query", "gallery"):
        tracks = []
        for pdir in sorted((root / split).iterdir()):
            for tdir in sorted(pdir.iterdir()):
                names = sorted(p.name for p in tdir.glob("*.jpg"))
                for n in names:
                    assert re.fullmatch(r"\d{4}_C[1-8]_F\d{4}_X\d{5,}\.jpg", n), n
                cams = {int(n[6]) for n in names}
                assert len(cams) == 1
                assert [int(n[9:13]) for n in names] == list(range(1, len(names) + 1))
                xs = [int(n.split("_X")[1][:-4]) for n in names]
                assert xs == sorted(xs) and len(set(np.diff(xs).tolist())) <= 1
                assert all(int(n[:4]) == int(pdir.name) for n in names)
                tracks.append((pdir.name + "/" + tdir.name, int(pdir.name), cams.pop(), xs[0], xs[-1]))
        out[split] = tracks
    return out


def test_dukevideo(data):
    root = data["dukevideo"]
    assert root.name == "DukeMTMC-VideoReID"
    d = read_dukevideo(root)
    assert len({p for _, p, *_ in d["train"]}) == IDS
    assert {c for _, _, c, *_ in d["train"]} == set(range(1, 9))
    assert len(d["query"]) == TEST_IDS == len({p for _, p, *_ in d["query"]})   # one per test id
    assert not {t for t, *_ in d["query"]} & {t for t, *_ in d["gallery"]}
    distractors = {p for _, p, *_ in d["gallery"]} - {p for _, p, *_ in d["query"]}
    assert distractors
    check_cross_camera([(p, c) for _, p, c, *_ in d["query"]], [(p, c) for _, p, c, *_ in d["gallery"]])
    # time: same-camera tracklets of different people overlap sometimes; an identity's own
    # tracklets never overlap on the common clock (global = X + camera_start - 1)
    manifest = json.loads((root.parent / "DukeMTMC-VideoReID.synthetic.json").read_text())
    start = {int(k): v for k, v in manifest["stats"]["clock"]["camera_start"].items()}
    allt = d["train"] + d["query"] + d["gallery"]
    overlaps = sum(1 for i, a in enumerate(allt) for b in allt[i + 1:]
                   if a[2] == b[2] and a[1] != b[1] and a[3] <= b[4] and b[3] <= a[4])
    assert overlaps > 0
    by_pid = defaultdict(list)
    for _, p, c, x0, x1 in allt:
        by_pid[p].append((x0 + start[c] - 1, x1 + start[c] - 1))
    for spans in by_pid.values():
        spans.sort()
        assert all(spans[i][1] < spans[i + 1][0] for i in range(len(spans) - 1))


# ---------------------------------------------------------------- generic properties
def tree_digest(folder):
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deterministic(layout, tmp_path):
    a = generate(layout, tmp_path / "1", seed=5, ids=6, test_ids=5)
    if layout in ("cuhk03", "mars"):
        time.sleep(1.1)   # MATLAB files must not carry a creation time
    b = generate(layout, tmp_path / "2", seed=5, ids=6, test_ids=5)
    c = generate(layout, tmp_path / "3", seed=6, ids=6, test_ids=5)
    assert tree_digest(a) == tree_digest(b)
    assert tree_digest(a) != tree_digest(c)
    m1, m2 = (p.parent / f"{p.name}.synthetic.json" for p in (a, b))
    assert m1.read_bytes() == m2.read_bytes()


def test_domains_differ(tmp_path):
    a = generate("market1501", tmp_path / "a", seed=0, domain="a", ids=8, test_ids=6)
    b = generate("market1501", tmp_path / "b", seed=0, domain="b", ids=8, test_ids=6)
    assert jpgs(a / "bounding_box_train") != jpgs(b / "bounding_box_train")

    def saturation(folder):
        return np.mean([np.asarray(Image.open(p).convert("HSV"))[..., 1].mean()
                        for p in Path(folder).glob("*.jpg")])
    # domain a: saturated clothes on plain backgrounds; domain b: muted clothes, textured backgrounds
    assert saturation(a / "bounding_box_train") > saturation(b / "bounding_box_train") + 15


def test_requested_sizes_and_cameras(tmp_path):
    root = generate("market1501", tmp_path, ids=7, test_ids=9, cams=3)
    train = parse_market_style(root / "bounding_box_train")
    query = parse_market_style(root / "query")
    assert len({p for p, _ in train}) == 7 and len({p for p, _ in query}) == 9
    assert {c for _, c in train + query} == {1, 2, 3}
    root = generate("msmt17", tmp_path, ids=4, test_ids=3, cams=4)
    assert {int(ln.split()[1]) for ln in (root / "list_query.txt").read_text().splitlines()} == {0, 1, 2}
    root = generate("cuhk03", tmp_path, ids=5, test_ids=4, cams=2)
    with h5py.File(root / "cuhk03_release" / "cuhk-03.mat", "r") as mat:
        assert mat["detected"].shape == (1, 2)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="valid layouts: market1501"):
        generate("market", tmp_path)
    with pytest.raises(ValueError, match="domain"):
        generate("market1501", tmp_path, domain="c")
    with pytest.raises(ValueError, match="cams"):
        generate("market1501", tmp_path, cams=12)       # the name has one camera digit
    with pytest.raises(ValueError, match="ids"):
        generate("market1501", tmp_path, ids=0)


def test_refuses_existing_folder(tmp_path):
    generate("veri776", tmp_path, ids=3, test_ids=2)
    with pytest.raises(FileExistsError, match="already exists"):
        generate("veri776", tmp_path, ids=3, test_ids=2)
    path = generate("veri776", tmp_path, ids=4, test_ids=2, overwrite=True)
    assert len({n[:4] for n in jpgs(path / "image_train")}) == 4
    # a folder this generator did not write is never replaced
    foreign = tmp_path / "other"
    (foreign / "VeRi").mkdir(parents=True)
    (foreign / "VeRi" / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not written by"):
        generate("veri776", foreign, overwrite=True)
    assert (foreign / "VeRi" / "mine.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_generate_benchmark(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "DEFAULT_IDS", 3)
    monkeypatch.setattr(synthetic, "DEFAULT_TEST_IDS", 2)
    out = generate_benchmark(tmp_path, seed=1)
    assert set(out) == {"a", "b"} and all(set(v) == set(LAYOUTS) for v in out.values())
    for domain in "ab":
        for layout in LAYOUTS:
            assert out[domain][layout] == tmp_path / domain / synthetic.FOLDERS[layout]
            assert out[domain][layout].is_dir()
            assert synthetic.read_manifest(tmp_path / domain, layout)["domain"] == domain
    stamp = (tmp_path / "a" / "VeRi" / "name_train.txt").stat().st_mtime_ns
    generate_benchmark(tmp_path, seed=1)   # same arguments: kept as is
    assert (tmp_path / "a" / "VeRi" / "name_train.txt").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError):
        generate_benchmark(tmp_path, seed=2)


def test_default_size_and_speed(tmp_path):
    """Defaults: 50 train ids x 2-4 cameras x 3 images, 60 test ids; well under 30 s."""
    t = time.time()
    root = generate("market1501", tmp_path)
    took = time.time() - t
    assert took < 30, f"market1501 at default size took {took:.1f} s"
    train = parse_market_style(root / "bounding_box_train")
    assert len({p for p, _ in train}) == 50
    per_id = defaultdict(set)
    for p, c in train:
        per_id[p].add(c)
    assert all(2 <= len(c) <= 4 for c in per_id.values())
    assert len({p for p, _ in parse_market_style(root / "query")}) == 60


def test_package_does_not_import_torch():
    code = ("import sys; import common_eval.synthetic, common_eval.synthetic.__main__; "
            "bad = [m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    env = dict(os.environ, PYTHONPATH=str(COMMON_EVAL_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# ---------------------------------------------------------------- CLI
def cli(*args):
    env = dict(os.environ, PYTHONPATH=str(COMMON_EVAL_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "common_eval.synthetic", *map(str, args)],
                          capture_output=True, text=True, env=env)


def test_cli(tmp_path):
    r = cli("--layout", "mars", "--root", tmp_path, "--seed", 2, "--domain", "b", "--ids", 3, "--test-ids", 2)
    assert r.returncode == 0, r.stderr
    assert "MARS" in r.stdout and (tmp_path / "MARS" / "info" / "query_IDX.mat").is_file()
    manifest = json.loads((tmp_path / "MARS.synthetic.json").read_text())
    assert (manifest["seed"], manifest["domain"], manifest["ids"], manifest["test_ids"]) == (2, "b", 3, 2)

    r = cli("--layout", "mars", "--root", tmp_path, "--ids", 3, "--test-ids", 2)
    assert r.returncode == 1 and "already exists" in r.stderr and "--overwrite" in r.stderr
    r = cli("--layout", "mars", "--root", tmp_path, "--ids", 3, "--test-ids", 2, "--overwrite")
    assert r.returncode == 0, r.stderr


def test_cli_unknown_layout(tmp_path):
    r = cli("--layout", "market", "--root", tmp_path)
    assert r.returncode == 2
    line = [ln for ln in r.stderr.splitlines() if "invalid choice" in ln]
    assert len(line) == 1 and all(name in line[0] for name in LAYOUTS)
    assert not any(tmp_path.iterdir())
    r = cli("--layout", "market1501")
    assert r.returncode == 2 and "--root" in r.stderr
