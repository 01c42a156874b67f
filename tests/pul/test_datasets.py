"""Loaders on synthetic folders in the real layouts: records, naming rules, counts, bad input."""
import json
import shutil
import warnings

import numpy as np
import pytest

from pul.datasets import DatasetError, canonical_name, init_dataset


def manifest(root, folder):
    return json.loads((root / f"{folder}.synthetic.json").read_text())["stats"]


def test_market_and_duke_match_the_generator_statistics(tiny_data):
    for name, root, folder in (("market", tiny_data / "b", "Market-1501-v15.09.15"),
                               ("duke", tiny_data / "a", "DukeMTMC-reID")):
        ds = init_dataset(name, root)
        st = manifest(root, folder)
        assert len(ds.train) == st["train"]["images"] and ds.num_train_ids == st["train"]["ids"]
        assert len(ds.query) == st["query"]["images"]
        # the gallery keeps junk (-1) and distractors (0), as the PUL evaluation lists them
        assert len(ds.gallery) == st["gallery"]["images"] + st["gallery"].get("junk", 0)
        assert ds.synthetic
        # train list sorted by file name, labels 0..#ids-1 in ascending pid order (train.list)
        names = [r[0] for r in ds.train]
        assert names == sorted(names)
        labels = ds.train_labels()
        pids = [r[1] for r in ds.train]
        assert labels[0] == 0 and max(labels) == ds.num_train_ids - 1
        assert all((a < b) == (la < lb) for a, b, la, lb in zip(pids, pids[1:], labels, labels[1:]) if a != b)
        # 50train.list: only the `known` lowest pids keep their label
        known = ds.known_labels(2)
        assert set(known) == {-1, 0, 1}
        assert all(k == (lab if lab < 2 else -1) for k, lab in zip(known, labels))
    market = init_dataset("market1501", tiny_data / "b")
    assert any(r[1] == -1 for r in market.gallery) and any(r[1] == 0 for r in market.gallery)
    assert all(r[1] > 0 for r in market.train + market.query)


def test_pid_and_camera_parsing(tmp_path):
    root = tmp_path / "Market-1501-v15.09.15"
    for sub, names in (("bounding_box_train", ["0002_c1s1_000451_03.jpg", "0007_c6s4_001234_01.jpg"]),
                       ("bounding_box_test", ["-1_c3s2_000001_01.jpg", "0000_c2s1_000002_02.jpg",
                                              "0002_c4s1_000003_01.jpg", "Thumbs.db"]),
                       ("query", ["0002_c5s3_000004_00.jpg"])):
        (root / sub).mkdir(parents=True)
        for n in names:
            (root / sub / n).write_bytes(b"")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = init_dataset("market1501", tmp_path)
    assert [(r[1], r[2]) for r in ds.train] == [(2, 1), (7, 6)]
    assert sorted((r[1], r[2]) for r in ds.gallery) == [(-1, 3), (0, 2), (2, 4)]   # Thumbs.db ignored
    assert ds.train_labels() == [0, 1]
    # not synthetic (no manifest): the differing counts are reported, naming both numbers
    msg = " ".join(str(x.message) for x in w)
    assert "12936" in msg and "differs from the official release" in msg and not ds.synthetic


def test_no_count_warning_for_synthetic_folders(tiny_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init_dataset("dukemtmcreid", tiny_data / "a")


def test_bad_names_and_missing_folders(tmp_path, tiny_data):
    with pytest.raises(DatasetError, match="does not exist"):
        init_dataset("market", tmp_path / "nowhere")
    with pytest.raises(DatasetError,
                       match=r"Market-1501-v15.09.15.*bounding_box_train/, bounding_box_test/, query/"):
        init_dataset("market", tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data / "a" / "DukeMTMC-reID", copy / "DukeMTMC-reID")
    shutil.rmtree(copy / "DukeMTMC-reID" / "query")
    with pytest.raises(DatasetError, match=r"missing folder .*query.*2,228"):
        init_dataset("duke", copy)
    (copy / "DukeMTMC-reID" / "query").mkdir()
    with pytest.raises(DatasetError, match="holds no image"):
        init_dataset("duke", copy)
    (copy / "DukeMTMC-reID" / "query" / "person12.jpg").write_bytes(b"")
    with pytest.raises(DatasetError,
                       match=r"person12.jpg' does not follow the naming rule PPPP_cC_fFFFFFFF.jpg"):
        init_dataset("duke", copy)


def test_factory_names():
    assert canonical_name("Market") == "market1501" and canonical_name("duke") == "dukemtmcreid"
    with pytest.raises(DatasetError,
                       match="unknown dataset 'markett'; valid: market1501, dukemtmcreid, cuhk03"):
        canonical_name("markett")


def test_records_point_at_readable_images(tiny_data):
    from pul.preprocessing import load_images
    ds = init_dataset("market", tiny_data / "b")
    imgs = load_images([r[0] for r in ds.query[:3]], (64, 32), progress=False)
    assert imgs.shape == (3, 64, 32, 3) and imgs.std() > 0 and np.isfinite(imgs).all()


# ---------------------------------------------------------------- naming quirks of the real releases
def make_tree(root, layout):
    for sub, names in layout.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for n in names:
            (root / sub / n).write_bytes(b"")


def parsed(records):
    return sorted((r[0].rsplit("/", 1)[1], r[1], r[2]) for r in records)


def test_market_accepts_the_double_jpg_names_of_the_real_release(tmp_path):
    """The author's Market query.list / test.list hold 24 names ending in '.jpg.jpg' (6 in query,
    18 in the gallery: person 1488, distractors 0000 and junk -1) within the official 3,368 / 19,732:
    the original parsed pid = int(name.split('_')[0]) and camera = name.split('_')[1][1] of every
    file in the folder, so they are ordinary images of their person and camera."""
    make_tree(tmp_path / "Market-1501-v15.09.15", {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "1488_c2s3_065527_01.jpg"],
        "query": ["1488_c1s6_023021_00.jpg.jpg", "1488_c2s3_065527_00.jpg.jpg",
                  "0002_c5s3_000004_00.jpg"],
        "bounding_box_test": ["0000_c1s6_023071_04.jpg.jpg", "1488_c3s3_071344_02.jpg.jpg",
                              "-1_c4s6_022316_11.jpg.jpg", "-1_c3s2_000001_01.jpg",
                              "0002_c4s1_000003_01.jpg"],
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the tiny tree differs from the official counts
        ds = init_dataset("market", tmp_path)
    assert parsed(ds.query) == [("0002_c5s3_000004_00.jpg", 2, 5), ("1488_c1s6_023021_00.jpg.jpg", 1488, 1),
                                ("1488_c2s3_065527_00.jpg.jpg", 1488, 2)]
    # the gallery keeps every file: junk -1 (skipped by the evaluator) and distractors 0000 included
    assert parsed(ds.gallery) == [("-1_c3s2_000001_01.jpg", -1, 3), ("-1_c4s6_022316_11.jpg.jpg", -1, 4),
                                  ("0000_c1s6_023071_04.jpg.jpg", 0, 1), ("0002_c4s1_000003_01.jpg", 2, 4),
                                  ("1488_c3s3_071344_02.jpg.jpg", 1488, 3)]
    assert len(ds.train) == 2 and ds.train_labels() == [0, 1]


def test_duke_and_cuhk03_accept_the_same_quirks(tmp_path):
    make_tree(tmp_path / "DukeMTMC-reID", {
        "bounding_box_train": ["0001_c2_f0046182.jpg", "0003_c1_f0044158.jpg.jpg"],
        "query": ["0001_c1_f0046000.jpg.jpg"],
        "bounding_box_test": ["0001_c5_f0046999.jpg", "-1_c3_f0000001.jpg", "0000_c4_f0000002.jpg.jpg"],
    })
    make_tree(tmp_path / "CUHK03", {
        "bounding_box_train": ["0003_c1_f01.jpg", "0004_c2_f07.jpg.jpg"],
        "query": ["0005_c1_f02.jpg.jpg"],
        "bbox_test": ["0005_c2_f08.jpg", "-1_c1_f03.jpg"],
    })
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        duke = init_dataset("duke", tmp_path)
        cuhk = init_dataset("cuhk03", tmp_path)
    assert [(r[1], r[2]) for r in duke.train] == [(1, 2), (3, 1)]
    assert [(r[1], r[2]) for r in duke.query] == [(1, 1)]
    assert parsed(duke.gallery)[:2] == [("-1_c3_f0000001.jpg", -1, 3), ("0000_c4_f0000002.jpg.jpg", 0, 4)]
    assert len(duke.gallery) == 3
    assert [(r[1], r[2]) for r in cuhk.train] == [(3, 1), (4, 2)]
    assert [(r[1], r[2]) for r in cuhk.query] == [(5, 1)]
    assert sorted((r[1], r[2]) for r in cuhk.gallery) == [(-1, 1), (5, 2)]


def test_an_unparseable_market_name_is_named_not_a_traceback(tmp_path):
    make_tree(tmp_path / "Market-1501-v15.09.15", {
        "bounding_box_train": ["0002_c1s1_000451_03.jpg", "00-8_c1s1_000151_01.jpg"],
        "query": ["0002_c5s3_000004_00.jpg"], "bounding_box_test": ["0002_c4s1_000003_01.jpg"]})
    with pytest.raises(DatasetError, match=r"00-8_c1s1_000151_01.jpg' does not follow the naming rule"):
        init_dataset("market", tmp_path)
