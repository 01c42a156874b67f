"""Dataset loaders on the synthetic benchmark in the official layouts, and bad dataset folders."""
import logging
import shutil

import pytest

from cdsm import datasets
from cdsm.errors import DatasetError
from common_eval.synthetic import generate, read_manifest


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    for layout in ("market1501", "dukemtmcreid", "msmt17"):
        generate(layout, root, seed=1, domain="a", ids=6, test_ids=5)
    return root


@pytest.mark.parametrize("name", ["market1501", "dukemtmcreid", "msmt17"])
def test_counts_match_the_generator(roots, name):
    ds = datasets.create(name, roots)
    stats = read_manifest(roots, name)["stats"]
    assert ds.synthetic
    for split in ("train", "query", "gallery"):
        items = getattr(ds, split)
        want = stats[split]["images"]
        if name == "msmt17" and split == "train":
            want += stats["val"]["images"]  # train = list_train + list_val
        assert len(items) == want
        assert items == sorted(items)
        assert all(p >= 0 for _, p, _ in items)                 # junk (-1) dropped
        assert all(0 <= c < {"market1501": 6, "dukemtmcreid": 8, "msmt17": 15}[name] for _, _, c in items)
    assert ds.info(ds.train)[0] == stats["train"]["ids"]


def test_market_keeps_distractors_and_drops_junk(roots):
    ds = datasets.create("market1501", roots)
    files = list((ds.root / "bounding_box_test").glob("*.jpg"))
    assert any(f.name.startswith("-1_") for f in files)
    assert any(p == 0 for _, p, _ in ds.gallery)
    assert len(ds.gallery) == sum(not f.name.startswith("-1_") for f in files)


def test_market_camera_and_pid_from_the_name(roots):
    ds = datasets.create("market1501", roots)
    path, pid, cam = ds.train[0]
    name = path.rsplit("/", 1)[1]
    assert int(name[:4]) == pid and int(name[6]) == cam + 1


def test_msmt17_camera_from_the_third_field(roots):
    ds = datasets.create("msmt17", roots)
    for path, pid, cam in ds.query[:5]:
        fields = path.rsplit("/", 1)[1].split("_")
        assert int(fields[2]) == cam + 1 and int(fields[0]) == pid


def test_msmt17_market_style_conversion(roots, tmp_path):
    official = datasets.create("msmt17", roots)
    conv = tmp_path / "MSMT17_V1"
    for sub, items in (("bounding_box_train", official.train), ("query", official.query),
                       ("bounding_box_test", official.gallery)):
        (conv / sub).mkdir(parents=True)
        for k, (path, pid, cam) in enumerate(items):
            shutil.copy(path, conv / sub / f"{pid:04d}_c{cam + 1}_{k:05d}.jpg")
    ds = datasets.create("msmt17", tmp_path)
    assert sorted((p, c) for _, p, c in ds.train) == sorted((p, c) for _, p, c in official.train)
    assert len(ds.gallery) == len(official.gallery)


def test_original_nesting_is_accepted(roots, tmp_path):
    (tmp_path / "market1501").mkdir()
    (tmp_path / "market1501" / "Market-1501-v15.09.15").symlink_to(roots / "Market-1501-v15.09.15")
    ds = datasets.create("market1501", tmp_path, verbose=False)
    assert len(ds.train) == len(datasets.create("market1501", roots, verbose=False).train)


def test_missing_dataset_names_the_expected_folders(tmp_path):
    with pytest.raises(DatasetError) as err:
        datasets.create("dukemtmcreid", tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "DukeMTMC-reID") in msg and str(tmp_path / "dukemtmcreid" / "DukeMTMC-reID") in msg
    assert "bounding_box_train" in msg


def test_incomplete_folder_and_bad_names(roots, tmp_path):
    (tmp_path / "Market-1501-v15.09.15" / "query").mkdir(parents=True)
    with pytest.raises(DatasetError, match="missing bounding_box_train/, bounding_box_test/"):
        datasets.create("market1501", tmp_path)
    for sub in ("bounding_box_train", "bounding_box_test"):
        (tmp_path / "Market-1501-v15.09.15" / sub).mkdir()
    (tmp_path / "Market-1501-v15.09.15" / "query" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="holiday.jpg: file name does not follow"):
        datasets.create("market1501", tmp_path)


def test_counts_differing_from_the_official_warn_unless_synthetic(roots, tmp_path, caplog):
    shutil.copytree(roots / "Market-1501-v15.09.15", tmp_path / "Market-1501-v15.09.15")
    with caplog.at_level(logging.WARNING, logger="cdsm"):
        ds = datasets.create("market1501", tmp_path, verbose=False)
    assert not ds.synthetic
    assert "official 12936 / 751" in caplog.text and "official 3368" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cdsm"):
        datasets.create("market1501", roots, verbose=False)
    assert "official" not in caplog.text


def test_unknown_name_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid: dukemtmcreid, market1501, msmt17"):
        datasets.create("personx", tmp_path)
