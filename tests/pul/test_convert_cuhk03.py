"""The CUHK03 converter (official cuhk-03.mat through h5py + new-protocol split -> the author's folders),
checked against the author-format folders the synthetic generator writes from the same images."""
import shutil

import numpy as np
import pytest
from conftest import readonly_mount, tree_snapshot
from PIL import Image

from pul import PULError
from pul.convert_cuhk03 import LISTS, convert_cuhk03, main
from pul.datasets import init_dataset


@pytest.fixture()
def official_only(cuhk_data, tmp_path):
    """A CUHK03 folder holding only the official release files."""
    dst = tmp_path / "CUHK03"
    dst.mkdir()
    src = cuhk_data / "CUHK03"
    shutil.copytree(src / "cuhk03_release", dst / "cuhk03_release")
    for f in src.glob("cuhk03_new_protocol_config_*.mat"):
        shutil.copy(f, dst / f.name)
    shutil.copy(cuhk_data / "CUHK03.synthetic.json", tmp_path)  # synthetic: no count warning
    return dst


def test_converter_reproduces_the_authors_folders(cuhk_data, official_only):
    ref = cuhk_data / "CUHK03"
    assert main([str(official_only)]) == 0
    for sub in ("bounding_box_train", "bbox_train", "bbox_test", "query"):
        got = sorted(p.name for p in (official_only / sub).iterdir())
        assert got == sorted(p.name for p in (ref / sub).iterdir()), sub
        assert got, sub
    for lst in LISTS:
        assert (official_only / lst).read_text() == (ref / lst).read_text(), lst
    # the pixels: the same detected crop (both JPEG-compressed, at different qualities)
    for sub in ("query", "bbox_test"):
        for p in sorted((ref / sub).iterdir())[:5]:
            a = np.asarray(Image.open(p), dtype=np.float32)
            b = np.asarray(Image.open(official_only / sub / p.name), dtype=np.float32)
            assert a.shape == b.shape and np.abs(a - b).mean() < 4.0, p.name
    # bbox_train holds the same images as bounding_box_train
    p = next((official_only / "bbox_train").iterdir())
    assert p.read_bytes() == (official_only / "bounding_box_train" / p.name).read_bytes()


def test_loader_converts_into_the_cache_not_the_data_root(official_only, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = tree_snapshot(official_only)
    ds = init_dataset("cuhk03", official_only.parent)
    assert tree_snapshot(official_only) == before                 # nothing written under the data root
    cached = [p.parent for p in (tmp_path / "cache" / "pul" / "cuhk03").glob("*/train.list")]
    assert len(cached) == 1 and (cached[0] / "bounding_box_train").is_dir()
    lines = (cached[0] / "train.list").read_text().splitlines()
    assert [r[0].rsplit("/", 1)[1] for r in ds.train] == [ln.split()[0] for ln in lines]
    assert ds.train_labels() == [int(ln.split()[1]) for ln in lines]
    assert {r[2] for r in ds.query + ds.gallery} == {1, 2}           # the two views as cameras
    assert {r[1] for r in ds.query} == {r[1] for r in ds.gallery}    # every query person in the gallery
    # reused while the release is unchanged
    stamp = (cached[0] / "train.list").stat().st_mtime_ns
    init_dataset("cuhk03", official_only.parent)
    assert (cached[0] / "train.list").stat().st_mtime_ns == stamp


def test_loader_on_a_read_only_data_root(official_only, tmp_path_factory, monkeypatch):
    """The data root (holding only the official release) is mounted read-only: the loader converts
    into the cache and the mount is unchanged."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    with readonly_mount(official_only.parent, tmp_path_factory.mktemp("ro")) as ro:
        before = tree_snapshot(ro)
        ds = init_dataset("cuhk03", ro)
        assert len(ds.train) > 0 and len(ds.query) > 0
        assert tree_snapshot(ro) == before


def test_converter_errors(official_only, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    convert_cuhk03(official_only, progress=False)
    with pytest.raises(PULError, match="already holds"):
        convert_cuhk03(official_only, progress=False)
    convert_cuhk03(official_only, overwrite=True, progress=False)
    empty = tmp_path / "empty" / "CUHK03"
    empty.mkdir(parents=True)
    with pytest.raises(PULError, match="cuhk-03.mat"):
        convert_cuhk03(empty)
    from pul.datasets import DatasetError
    with pytest.raises(DatasetError, match="python -m pul.convert_cuhk03"):
        init_dataset("cuhk03", empty.parent)
    (empty / "cuhk03_release").mkdir()
    (empty / "cuhk03_release" / "cuhk-03.mat").write_bytes(b"broken")
    shutil.copy(official_only / "cuhk03_new_protocol_config_detected.mat", empty)
    with pytest.raises(PULError, match="h5py"):
        convert_cuhk03(empty)
