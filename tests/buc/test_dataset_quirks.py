"""Naming quirks of the real datasets (issue 16, item 1): each loader keeps the counts the
original gets on trees with junk (-1), distractors (0000), `.jpg.jpg` names (24 of them in PUL's
authors' Market lists, e.g. 1488_c1s6_023021_00.jpg.jpg), non-image files, DukeV's frame names
and MARS's junk folder names; a name that cannot be parsed is one error naming the file."""
from __future__ import annotations

import shutil

import pytest
from conftest import tiny_argv
from train import main

from buc import datasets


def copy_tree(tiny_root, dst, folder):
    shutil.copytree(tiny_root / folder, dst / folder)
    shutil.copy(tiny_root / f"{folder}.synthetic.json", dst)
    return dst / folder


def summary(ds):
    return [(r[1], r[2], len(r[0])) for r in ds.train], [(r[1], r[2], len(r[0])) for r in ds.query], \
        [(r[1], r[2], len(r[0])) for r in ds.gallery]


def test_market_jpg_jpg_names_keep_the_counts(tiny_root, tmp_path):
    """PUL's authors' Market lists hold 24 names ending in .jpg.jpg and still total 3,368 / 19,732:
    such a file is an image like any other (pid and camera from the start of the name)."""
    official = copy_tree(tiny_root, tmp_path, "Market-1501-v15.09.15")
    renamed = []
    for sub in ("query", "bounding_box_test", "bounding_box_train"):
        for f in sorted(p for p in (official / sub).iterdir() if not p.name.startswith("-1"))[:3]:
            f.rename(f.with_name(f.name + ".jpg"))
            renamed.append(f"{sub}/{f.name}.jpg")
    ref = datasets.create("market1501", tiny_root, verbose=False)
    ds = datasets.create("market1501", tmp_path, verbose=False)
    assert summary(ds) == summary(ref)
    origins = {ds.origin_of(r[0][0]).split("/", 1)[1] for r in ds.train + ds.query + ds.gallery}
    assert set(renamed) <= origins


def test_market_non_image_files_are_ignored(tiny_root, tmp_path):
    """Files that are not .jpg (Thumbs.db of a copy opened on Windows, a readme) are not images."""
    official = copy_tree(tiny_root, tmp_path, "Market-1501-v15.09.15")
    for sub in ("query", "bounding_box_test", "bounding_box_train"):
        (official / sub / "Thumbs.db").write_bytes(b"\0" * 64)
        (official / sub / "readme.txt").write_text("x")
    assert summary(datasets.create("market1501", tmp_path, verbose=False)) == \
        summary(datasets.create("market1501", tiny_root, verbose=False))


def test_market_junk_dropped_distractors_kept_counts(tiny_root, tmp_path):
    """Gallery = bounding_box_test minus the -1 junk (Market: 19,732 - 3,819 = 15,913), 0000
    distractors kept as identity 0."""
    official = copy_tree(tiny_root, tmp_path, "Market-1501-v15.09.15")
    test = official / "bounding_box_test"
    some = sorted(test.iterdir())[-1]
    for i in range(3):
        shutil.copy(some, test / f"-1_c{i + 1}s1_00{i}151_01.jpg")
        shutil.copy(some, test / f"0000_c{i + 1}s2_00{i}151_02.jpg")
    files = list(test.iterdir())
    junk = sum(p.name.startswith("-1_") for p in files)
    distractors = sum(p.name.startswith("0000_") for p in files)
    ds = datasets.create("market1501", tmp_path, verbose=False)
    assert len(ds.gallery) == len(files) - junk
    assert sum(r[1] == 0 for r in ds.gallery) == distractors >= 3
    assert all(r[1] != -1 for r in ds.train + ds.query + ds.gallery)


def test_duke_distractor_identities_kept_and_a_junk_name_dropped(tiny_root, tmp_path):
    official = copy_tree(tiny_root, tmp_path, "DukeMTMC-reID")
    ref = datasets.create("duke", tmp_path, verbose=False)
    gallery_only = {r[1] for r in ref.gallery} - {r[1] for r in ref.query}
    assert gallery_only                                    # distractor identities stay in the gallery
    assert len(ref.gallery) == len(list((official / "bounding_box_test").iterdir()))
    shutil.copy(sorted((official / "bounding_box_test").iterdir())[0],
                official / "bounding_box_test" / "-1_c2_f0046985.jpg")
    ds = datasets.create("duke", tmp_path, verbose=False)
    assert summary(ds) == summary(ref)                     # -1 dropped (the original would index slot -1)


@pytest.mark.parametrize("name", ["00-8_c1s1_000151_01.jpg", "a001_c1s1_000151_01.jpg"])
def test_unparseable_market_name_is_one_error_naming_the_file(tiny_root, tmp_path, capsys, name):
    """int('00-8') was a ValueError traceback (Open-ReID's ([-\\d]+) accepts it); now one line."""
    official = copy_tree(tiny_root, tmp_path, "Market-1501-v15.09.15")
    shutil.copy(sorted((official / "query").iterdir())[0], official / "query" / name)
    with pytest.raises(datasets.MalformedDatasetError, match=name.replace(".", r"\.")):
        datasets.create("market1501", tmp_path, verbose=False)
    assert main(tiny_argv(tmp_path, tmp_path / "logs")) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and name in err[0]


def test_dukevideo_frame_names_order_and_camera(tiny_root, tmp_path):
    """DukeV frames '0001_C6_F0099_X30823.jpg': the camera is the digit after C (character 6, as
    the original reads it), frames in F order (the X frame number may run backwards in a
    renamed copy), gaps in F allowed, non-image files ignored; tracklet counts kept."""
    official = copy_tree(tiny_root, tmp_path, "DukeMTMC-VideoReID")
    tdir = sorted(p for p in (official / "query").glob("*/*") if p.is_dir())[0]
    frames = sorted(tdir.glob("*.jpg"))
    assert len(frames) >= 3
    frames[1].unlink()                                                     # a gap in F
    for i, f in enumerate(sorted(tdir.glob("*.jpg"))):                     # X numbers decreasing
        pid, cam, fidx, _ = f.stem.split("_")
        f.rename(tdir / f"{pid}_{cam}_{fidx}_X{99999 - i:05d}.jpg")
    (tdir / "Thumbs.db").write_bytes(b"\0")
    ref = datasets.create("dukevideo", tiny_root, verbose=False)
    ds = datasets.create("dukevideo", tmp_path, verbose=False)
    assert [len(s) for s in summary(ds)] == [len(s) for s in summary(ref)]
    rec = next(r for r in ds.query if str(tdir.relative_to(tmp_path)) in ds.origin_of(r[0][0]))
    names = [ds.origin_of(f).rsplit("/", 1)[1] for f in rec[0]]
    assert len(names) == len(frames) - 1
    assert [n.split("_")[2] for n in names] == sorted(n.split("_")[2] for n in names)
    assert all(int(n[6]) - 1 == rec[2] for n in names)


def test_mars_junk_folder_distractors_and_counts(tiny_root):
    """MARS: frames of junk tracklets live in bbox_test/00-1/ ('00-1C6T0001F001.jpg', camera at
    character 5); gallery = test rows - query rows - junk rows, 0000 distractors kept."""
    from scipy.io import loadmat
    official = tiny_root / "MARS"
    rows = loadmat(str(official / "info" / "tracks_test_info.mat"))["track_test_info"]
    qidx = set((loadmat(str(official / "info" / "query_IDX.mat"))["query_IDX"].ravel() - 1).tolist())
    junk = sum(1 for i, r in enumerate(rows) if i not in qidx and r[2] == -1)
    assert junk and any((official / "bbox_test" / "00-1").iterdir())
    ds = datasets.create("mars", tiny_root, verbose=False)
    assert len(ds.query) == len(qidx)
    assert len(ds.gallery) == len(rows) - len(qidx) - junk
    distractors = sum(1 for i, r in enumerate(rows) if i not in qidx and r[2] == 0)
    assert sum(r[1] == 0 for r in ds.gallery) == distractors
    assert sum(r[1] == 0 for r in ds.gallery) > 0
