"""The video loaders: real naming rules, counts equal the generator's manifest, dense chunks,
the original's quirks, and clear errors for a missing or malformed dataset."""

import json
import logging

import pytest
from conftest import write_frame

from auxusl.datasets import create, tracklet_key
from auxusl.datasets.dukevideo import dense_chunks, global_frame, parse_frame_name
from auxusl.errors import DatasetError


def manifest(root, folder):
    return json.loads((root / f"{folder}.synthetic.json").read_text())["stats"]


def test_mars_counts_and_protocol(small_root):
    stats = manifest(small_root, "MARS")
    d = create("mars", small_root / "MARS", verbose=False)
    assert len(d.train) == stats["train"]["tracklets"] and len(d.query) == stats["query"]["tracklets"]
    assert len(d.gallery) == stats["gallery"]["tracklets"] and stats["gallery"]["junk"] > 0  # junk dropped
    assert {c for _, _, c in d.train} <= set(range(6))  # 0-based cameras
    assert all(p != -1 for _, p, _ in d.gallery) and any(p == 0 for _, p, _ in d.gallery)  # distractors kept
    assert not set(d.query) & set(d.gallery)  # torchreid / the original: queries not in the gallery
    official = create("mars", small_root / "MARS", mars_gallery="official", verbose=False)
    assert set(d.query) <= set(official.gallery) and len(official.gallery) == len(d.gallery) + len(d.query)
    frames, pid, cam = d.train[0]
    assert all(f"C{cam + 1}T" in f.rsplit("/", 1)[1] for f in frames) and frames == tuple(sorted(frames))


def test_dukevideo_counts(small_root, caplog):
    stats = manifest(small_root, "DukeMTMC-VideoReID")
    with caplog.at_level(logging.WARNING):
        d = create("duke", small_root / "DukeMTMC-VideoReID", verbose=False)
    assert not caplog.records  # synthetic: no count warning
    for split in ("train", "query", "gallery"):
        assert len(getattr(d, split)) == stats[split]["tracklets"]
        assert sum(len(f) for f, _, _ in getattr(d, split)) == stats[split]["frames"]
    assert {c for _, _, c in d.gallery} <= set(range(8))


def test_frame_names_and_clock():
    assert parse_frame_name("0001_C6_F0099_X30823.jpg") == (1, 6, 99, 30823)
    assert parse_frame_name("0001C6F0099X30823.jpg") == (1, 6, 99, 30823)  # the README's spelling
    assert global_frame(6, 30823) == 30823 + 22402 - 1
    with pytest.raises(DatasetError, match="not a DukeMTMC-VideoReID frame name"):
        parse_frame_name("0001_c6_f0099.jpg")


def test_dense_chunks_rule():
    frames = tuple(range(100))
    assert [len(c) for c in dense_chunks(frames, 40)] == [40, 60]  # the last chunk takes the rest
    assert [len(c) for c in dense_chunks(frames, 32)] == [32, 32, 36]
    assert dense_chunks(frames[:39], 40) == [frames[:39]]  # shorter than a step: whole
    assert sum(dense_chunks(frames, 7), ()) == frames


def test_missing_frame_index_is_skipped_as_the_original(tmp_path, caplog):
    root = tmp_path / "DukeMTMC-VideoReID"
    for split in ("train", "query", "gallery"):
        for i in (2, 3, 4):  # numbered from F0002: the original reads F0001..F0003, so F0004 is lost
            write_frame(root / split / "0001" / "0001" / f"0001_C1_F{i:04d}_X{100 + 12 * i:05d}.jpg")
    with caplog.at_level(logging.WARNING):
        d = create("duke", root, verbose=False)
    assert [f.rsplit("_F", 1)[1][:4] for f in d.train[0][0]] == ["0002", "0003"]
    assert "frame index F0001 is missing" in caplog.text


def test_keys_are_file_names(small_root):
    d = create("duke", small_root / "DukeMTMC-VideoReID", mode="dense", dense_step=8, verbose=False)
    keys = d.keys(d.train)
    assert len(set(keys)) == len(keys)
    frames = d.train[0][0]
    assert keys[0] == tracklet_key(frames, d.root)
    assert keys[0].startswith("train/") and keys[0].endswith(frames[-1].rsplit("/", 1)[1])


def test_missing_dataset(tmp_path):
    with pytest.raises(
        DatasetError,
        match=r"dataset 'mars' not found: expected the folder .*/nowhere/MARS "
        r"\(the data root .*/nowhere itself does not exist\)",
    ):
        create("mars", tmp_path / "nowhere" / "MARS")
    (tmp_path / "MARS" / "bbox_train").mkdir(parents=True)
    (tmp_path / "MARS" / "bbox_test").mkdir()
    with pytest.raises(DatasetError, match=r"MARS/info/train_name.txt is missing"):
        create("mars", tmp_path / "MARS")


def test_unknown_and_unported_datasets():
    with pytest.raises(ValueError, match="valid: mars, duke"):
        create("market", "/x")
    with pytest.raises(ValueError, match="not ported"):
        create("duke_track", "/x")


# ------------------------------------------------------------------ naming quirks the originals accept
def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_dukevideo_hidden_and_other_files_are_not_frames(small_root, tmp_path):
    """The original globs '*.jpg': macOS '._' resource forks, .DS_Store and Thumbs.db are not
    frames, and the counts stay the dataset's."""
    root = _copy(small_root / "DukeMTMC-VideoReID", tmp_path / "DukeMTMC-VideoReID")
    want = create("duke", small_root / "DukeMTMC-VideoReID", verbose=False)
    frames, _, _ = want.train[0]
    from pathlib import Path

    tdir = root / Path(frames[0]).parent.relative_to(small_root / "DukeMTMC-VideoReID")
    assert tdir.is_dir() and tdir.parts[-3] == "train"
    first = Path(frames[0]).name
    (tdir / f"._{first}").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble, not a JPEG
    (tdir / "Thumbs.db").write_bytes(b"x")
    (tdir / ".DS_Store").write_bytes(b"x")
    got = create("duke", root, verbose=False)
    for split in ("train", "query", "gallery"):
        assert [(len(f), p, c) for f, p, c in getattr(got, split)] == [
            (len(f), p, c) for f, p, c in getattr(want, split)
        ]


def test_dukevideo_doubled_extension_is_a_frame(tmp_path):
    root = tmp_path / "DukeMTMC-VideoReID"
    for split in ("train", "query", "gallery"):
        for i in (1, 2, 3):
            ext = ".jpg.jpg" if i == 2 else ".jpg"
            write_frame(root / split / "0001" / "0001" / f"0001_C2_F{i:04d}_X{100 + 12 * i:05d}{ext}")
    d = create("duke", root, verbose=False)
    assert [f.rsplit("/", 1)[1] for f in d.train[0][0]] == [
        "0001_C2_F0001_X00112.jpg",
        "0001_C2_F0002_X00124.jpg.jpg",
        "0001_C2_F0003_X00136.jpg",
    ]
    assert d.train[0][2] == 1 and parse_frame_name("0001_C2_F0002_X00124.jpg.jpg") == (1, 2, 2, 124)


def test_dukevideo_unparseable_frame_name_is_one_clear_error(tmp_path):
    root = tmp_path / "DukeMTMC-VideoReID"
    for split in ("train", "query", "gallery"):
        write_frame(root / split / "0001" / "0001" / "0001_C2_F0001_X00112.jpg")
    write_frame(root / "train" / "0001" / "0001" / "00-8_c1s1_000151_01.jpg")
    with pytest.raises(DatasetError, match=r"00-8_c1s1_000151_01.jpg: not a DukeMTMC-VideoReID frame name"):
        create("duke", root, verbose=False)


def test_mars_info_files_as_matlab_and_editors_write_them(small_root, tmp_path):
    """CRLF line endings and trailing blank lines in the name lists, query_IDX as a row or a
    column, the track tables as double or uint16: the original reads them all the same."""
    import numpy as np
    from scipy.io import loadmat, savemat

    root = _copy(small_root / "MARS", tmp_path / "MARS")
    want = create("mars", small_root / "MARS", verbose=False)
    info = root / "info"
    for name in ("train_name.txt", "test_name.txt"):
        text = (info / name).read_text()
        (info / name).write_bytes(text.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    q = loadmat(str(info / "query_IDX.mat"))["query_IDX"]
    savemat(str(info / "query_IDX.mat"), {"query_IDX": np.asarray(q, dtype=np.float64).reshape(1, -1)})
    t = loadmat(str(info / "tracks_train_info.mat"))["track_train_info"]
    savemat(str(info / "tracks_train_info.mat"), {"track_train_info": np.asarray(t, dtype=np.float64)})
    t = loadmat(str(info / "tracks_test_info.mat"))["track_test_info"]
    savemat(str(info / "tracks_test_info.mat"), {"track_test_info": np.asarray(t, dtype=np.int32)})
    got = create("mars", root, verbose=False)
    for split in ("train", "query", "gallery"):
        a = [(len(f), f[0].rsplit("/", 1)[1], p, c) for f, p, c in getattr(got, split)]
        b = [(len(f), f[0].rsplit("/", 1)[1], p, c) for f, p, c in getattr(want, split)]
        assert a == b, split
