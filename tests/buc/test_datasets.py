"""Loaders and the converter on synthetic trees in the official layouts."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings

import pytest

from buc import datasets
from buc.convert import main as convert_main
from common_eval.synthetic import read_manifest

CASES = [("market1501", "market1501", "images"), ("duke", "dukemtmcreid", "images"),
         ("mars", "mars", "tracklets"), ("DukeMTMC-VideoReID", "dukevideo", "tracklets")]


@pytest.mark.parametrize("name,layout,unit", CASES)
def test_counts_match_the_generator(tiny_root, name, layout, unit):
    ds = datasets.create(name, tiny_root, verbose=False)
    stats = read_manifest(tiny_root, layout)["stats"]
    got = ds.statistics()
    for split in ("train", "query", "gallery"):
        assert got[split][unit] == stats[split][unit], split
        assert got[split]["cams"] <= ds.num_cams
    assert got["train"]["ids"] == stats["train"]["ids"]
    # train records grouped by identity (pid, camera, video id), relabelled 0..#ids-1
    keys = [(r[1], r[2], r[3]) for r in ds.train]
    assert keys == sorted(keys)
    assert sorted({r[1] for r in ds.train}) == list(range(ds.num_train_ids))
    assert all(0 <= r[2] < ds.num_cams for r in ds.train + ds.query + ds.gallery)
    assert all(r[1] >= 0 for r in ds.query + ds.gallery)                  # no junk anywhere
    assert ds.is_video == (unit == "tracklets")
    vids = [r[3] for r in ds.train + ds.query + ds.gallery]
    assert len(set(vids)) == len(vids)
    for frames, *_ in ds.train[:3] + ds.query[:3]:
        assert all((ds.root / "images" / f).is_file() for f in frames)


def test_market_junk_dropped_distractors_kept(tiny_root):
    ds = datasets.create("market1501", tiny_root, verbose=False)
    official = tiny_root / "Market-1501-v15.09.15" / "bounding_box_test"
    junk = [p for p in official.iterdir() if p.name.startswith("-1_")]
    distractors = [p for p in official.iterdir() if p.name.startswith("0000_")]
    assert junk and distractors
    assert len(ds.gallery) == len(list(official.iterdir())) - len(junk)
    assert sum(r[1] == 0 for r in ds.gallery) == len(distractors)
    # camera: Market's c<N> digit, 0-based; the origin of a converted frame is the official file
    for frames, pid, cam, _ in ds.gallery:
        origin = ds.origin_of(frames[0])
        m = re.match(r"([-\d]+)_c(\d)", origin.split("/")[-1])
        assert (int(m.group(1)), int(m.group(2)) - 1) == (pid, cam)


def test_mars_gallery_excludes_queries_and_junk(tiny_root):
    ds = datasets.create("mars", tiny_root, verbose=False)
    q = {r[0] for r in ds.query}
    assert not q & {r[0] for r in ds.gallery}
    origins = {ds.origin_of(r[0][0]) for r in ds.gallery}
    assert not any("/00-1/" in o for o in origins)
    assert any(r[1] == 0 for r in ds.gallery)                 # distractors kept
    # frames of a tracklet keep their order and the camera of their names (character 5)
    for frames, _, cam, _ in ds.query:
        names = [ds.origin_of(f).split("/")[-1] for f in frames]
        assert names == sorted(names) and all(int(n[5]) - 1 == cam for n in names)


def test_dukevideo_underscore_camera(tiny_root):
    ds = datasets.create("dukevideo", tiny_root, verbose=False)
    for frames, _, cam, _ in ds.train + ds.query + ds.gallery:
        name = ds.origin_of(frames[0]).split("/")[-1]
        assert re.match(r"\d{4}_C\d_F\d{4}_X\d+\.jpg", name)
        assert int(name[6]) - 1 == cam
    for frames, pid, _, _ in ds.query + ds.gallery:
        assert int(ds.origin_of(frames[0]).split("/")[-1][:4]) == pid


def test_dukevideo_readme_naming_is_parsed(tiny_root, tmp_path):
    src = tiny_root / "DukeMTMC-VideoReID"
    dst = tmp_path / "DukeMTMC-VideoReID"
    shutil.copytree(src, dst)
    shutil.copy(tiny_root / "DukeMTMC-VideoReID.synthetic.json", tmp_path)
    for f in dst.rglob("*.jpg"):
        f.rename(f.with_name(f.name.replace("_", "")))       # 0001C6F0099X30823.jpg
    a = datasets.create("dukevideo", tiny_root, verbose=False)
    b = datasets.create("dukevideo", tmp_path, verbose=False)
    assert [(r[1], r[2], len(r[0])) for r in a.gallery] == [(r[1], r[2], len(r[0])) for r in b.gallery]


def test_converted_copy_is_reused_and_rebuilt_when_the_source_changes(tiny_root, tmp_path):
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", tmp_path / "Market-1501-v15.09.15")
    shutil.copy(tiny_root / "Market-1501-v15.09.15.synthetic.json", tmp_path)
    ds = datasets.create("market", tmp_path, verbose=False)
    meta = ds.root / "meta.json"
    stamp = meta.stat().st_mtime_ns
    datasets.create("market", tmp_path, verbose=False)
    assert meta.stat().st_mtime_ns == stamp                    # reused
    manifest = tmp_path / "Market-1501-v15.09.15.synthetic.json"
    manifest.write_text(manifest.read_text().replace('"seed": 3', '"seed": 4'))
    datasets.create("market", tmp_path, verbose=False)
    assert meta.stat().st_mtime_ns != stamp                    # regenerated source -> reconverted
    source = json.loads(meta.read_text())["converter"]["source"]
    assert source == str((tmp_path / "Market-1501-v15.09.15").resolve())


def test_converter_cli(tiny_root, tmp_path, capsys):
    assert convert_main(["--dataset", "duke", "--data-root", str(tiny_root), "--out", str(tmp_path / "d"),
                         "--link", "copy"]) == 0
    assert (tmp_path / "d" / "meta.json").is_file() and (tmp_path / "d" / "splits.json").is_file()
    assert convert_main(["--dataset", "dukemtmc-reid", "--data-root", str(tiny_root)]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset 'dukemtmc-reid'" in err and "market1501" in err and "dukevideo" in err
    out = subprocess.run([sys.executable, "-m", "buc.convert", "--dataset", "mars", "--data-root",
                          str(tmp_path / "nothing")], capture_output=True, text=True)
    assert out.returncode == 1 and "MARS" in out.stderr and "info/" in out.stderr


def test_missing_and_malformed_datasets(tiny_root, tmp_path):
    with pytest.raises(datasets.DatasetNotFoundError, match=r"Market-1501-v15\.09\.15.*bounding_box_train"):
        datasets.create("market1501", tmp_path)
    (tmp_path / "DukeMTMC-VideoReID" / "train").mkdir(parents=True)
    with pytest.raises(datasets.DatasetNotFoundError, match="gallery"):
        datasets.create("dukevideo", tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(tiny_root / "DukeMTMC-reID", bad / "DukeMTMC-reID")
    (bad / "DukeMTMC-reID" / "query" / "hello.jpg").write_bytes(b"x")
    with pytest.raises(datasets.MalformedDatasetError, match="hello.jpg"):
        datasets.create("duke", bad)
    with pytest.raises(KeyError, match="valid names: DukeMTMC-VideoReID, duke, market1501, mars"):
        datasets.get_class("market-1501")


def test_count_warning_on_real_looking_folders(tiny_root, tmp_path):
    shutil.copytree(tiny_root / "DukeMTMC-reID", tmp_path / "DukeMTMC-reID")   # no manifest beside it
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        datasets.create("duke", tmp_path, verbose=False)
    msgs = [str(x.message) for x in w]
    assert any("official statistics are 702 ids / 16522 images" in m for m in msgs)
