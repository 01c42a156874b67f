"""The naming quirks of the real datasets, each against the rule of the original loaders (3C's,
ClusterContrast-style: ``glob('*.jpg')``, ``re.search`` of ``<pid>_c<camera>``, pid -1 dropped;
SpCL's list reader for the official MSMT17 release). The rule is re-implemented here, written
from its description, and the loader must give the records (and so the counts) it gives.

Real quirks covered: Market's junk (``-1_...``) and distractors (``0000_...``), names ending in
``.jpg.jpg`` (24 of them in PUL's authors' Market lists, which still total the official counts),
``Thumbs.db`` beside the images, the official MSMT17 lists (``<pid>/<name> <pid>``, camera in the
third field, train = list_train + list_val) with CRLF endings and a trailing empty line, VeRi's
3-digit cameras and its ``name_*.txt`` / ``gt_image.txt`` / ``jk_image.txt`` beside the images
(not read: the originals glob the folders). A name whose pid is not an integer
(``00-8_c1s1_...``, which crashes the original's ``int()``) is one DatasetError naming the file.
"""
import glob
import os
import re

import pytest
from conftest import tiny_args

from ccc import datasets
from ccc.errors import DatasetError

JPEG = b"\xff\xd8\xff\xe0not decoded by the loaders\xff\xd9"


def touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(JPEG)


def original_rule(folder, pattern):
    """What the original loaders return for one folder: (file name, pid, 0-based camera)."""
    out = []
    for path in glob.glob(os.path.join(str(folder), "*.jpg")):
        pid, cam = map(int, re.search(pattern, os.path.basename(path)).groups())
        if pid != -1:
            out.append((os.path.basename(path), pid, cam - 1))
    return sorted(out)


def ours(items):
    return sorted((os.path.basename(p), pid, cam) for p, pid, cam in items)


@pytest.fixture
def market(tmp_path):
    root = tmp_path / "Market-1501-v15.09.15"
    touch(root / "bounding_box_train", "0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
          "0007_c1s6_028546_01.jpg.jpg", "1500_c6s3_085567_02.jpg", "Thumbs.db")
    touch(root / "query", "0001_c1s1_001051_00.jpg", "1488_c1s6_023021_00.jpg.jpg", "1500_c3s3_000001_00.jpg")
    touch(root / "bounding_box_test", "0000_c1s1_000151_01.jpg", "0000_c6s4_002202_04.jpg",
          "-1_c1s1_000401_03.jpg", "-1_c3s3_064544_04.jpg", "0001_c2s1_000301_01.jpg",
          "1488_c2s3_059407_02.jpg.jpg", "1500_c1s1_000051_01.jpg", "Thumbs.db")
    return tmp_path


def test_market_junk_distractors_double_extension_and_thumbs(market):
    d = datasets.create("market1501", market)
    folder = market / "Market-1501-v15.09.15"
    for split, sub in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test")):
        assert ours(getattr(d, split)) == original_rule(folder / sub, r"([-\d]+)_c(\d)")
    assert (len(d.train), len(d.query), len(d.gallery)) == (4, 3, 5)   # junk and Thumbs.db out
    assert ("0007_c1s6_028546_01.jpg.jpg", 7, 0) in ours(d.train)
    assert ("1488_c1s6_023021_00.jpg.jpg", 1488, 0) in ours(d.query)
    assert sum(pid == 0 for _, pid, _ in d.gallery) == 2               # distractors stay in the gallery


def test_market_unparseable_name_is_one_error_naming_the_file(market):
    bad = market / "Market-1501-v15.09.15" / "bounding_box_train" / "00-8_c1s1_000151_01.jpg"
    bad.write_bytes(JPEG)
    with pytest.raises(ValueError):            # the original rule: int('00-8') fails
        original_rule(bad.parent, r"([-\d]+)_c(\d)")
    with pytest.raises(DatasetError, match=r"00-8_c1s1_000151_01\.jpg: file name does not follow"):
        datasets.create("market1501", market)


def test_unparseable_name_through_train_py(train_script, market, tmp_path, capsys):
    (market / "Market-1501-v15.09.15" / "query" / "00-8_c1s1_000151_01.jpg").write_bytes(JPEG)
    rc = train_script.main(tiny_args(market, tmp_path / "logs"))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and "00-8_c1s1_000151_01.jpg" in err and "Traceback" not in err


def msmt_name(pid, idx, cam):
    return f"{pid:04d}_{idx:03d}_{cam:02d}_0303morning_{idx:04d}_0.jpg"


def test_msmt17_official_lists(tmp_path):
    root = tmp_path / "MSMT17_V1"
    lines = {"list_train.txt": [], "list_val.txt": [], "list_query.txt": [], "list_gallery.txt": []}
    plan = {"list_train.txt": ("train", [(0, 0, 1), (0, 1, 15), (1, 2, 3)]),
            "list_val.txt": ("train", [(0, 3, 7), (2, 4, 2)]),
            "list_query.txt": ("test", [(0, 0, 1), (1, 1, 4)]),
            "list_gallery.txt": ("test", [(0, 2, 2), (1, 3, 9), (3, 4, 12)])}
    for name, (folder, entries) in plan.items():
        for pid, idx, cam in entries:
            touch(root / folder / f"{pid:04d}", msmt_name(pid, idx, cam))
            lines[name].append(f"{pid:04d}/{msmt_name(pid, idx, cam)} {pid}")
        (root / name).write_bytes(("\r\n".join(lines[name]) + "\r\n\r\n").encode())   # CRLF, empty line
    d = datasets.create("msmt17", tmp_path)

    def spcl(list_names, folder):   # SpCL's reader: '<path> <pid>', camera = third '_' field
        out = []
        for name in list_names:
            for line in (root / name).read_text().splitlines():
                if line.strip():
                    rel, pid = line.split()
                    out.append((os.path.basename(rel), int(pid), int(rel.split("_")[2]) - 1))
        return sorted(out)

    assert ours(d.train) == spcl(["list_train.txt", "list_val.txt"], "train")
    assert ours(d.query) == spcl(["list_query.txt"], "test")
    assert ours(d.gallery) == spcl(["list_gallery.txt"], "test")
    assert (len(d.train), len(d.query), len(d.gallery)) == (5, 2, 3)
    assert {c for _, _, c in d.train} == {0, 14, 2, 6, 1}

    (root / "list_query.txt").write_text(f"0000/{msmt_name(0, 0, 1)} zero\n")
    with pytest.raises(DatasetError, match=r"list_query.txt:1: the identity 'zero' is not an integer"):
        datasets.create("msmt17", tmp_path)


def test_msmt17_market_style_conversion_two_digit_cameras(tmp_path):
    root = tmp_path / "MSMT17_V1"
    touch(root / "bounding_box_train", "0000_c01_0000.jpg", "0000_c15_0001.jpg", "-1_c3_0002.jpg",
          "Thumbs.db")
    touch(root / "query", "0005_c2_0000.jpg")
    touch(root / "bounding_box_test", "0005_c12_0001.jpg", "0006_c9_0002.jpg.jpg")
    d = datasets.create("msmt17", tmp_path)
    for split, sub in (("train", "bounding_box_train"), ("query", "query"), ("gallery", "bounding_box_test")):
        assert ours(getattr(d, split)) == original_rule(root / sub, r"([-\d]+)_c(\d+)")
    assert ours(d.train) == [("0000_c01_0000.jpg", 0, 0), ("0000_c15_0001.jpg", 0, 14)]


def test_veri_names_and_its_list_files(tmp_path):
    root = tmp_path / "VeRi"
    names = {"image_train": ["0001_c001_00016450_0.jpg", "0001_c002_00016650_0.jpg",
                             "0776_c020_00084130_1.jpg"],
             "image_query": ["0002_c002_00030600_0.jpg"],
             "image_test": ["0002_c003_00084200_0.jpg", "0005_c011_00011210_1.jpg"]}
    for folder, files in names.items():
        touch(root / folder, *files, "Thumbs.db")
    list_of = {"image_train": "name_train.txt", "image_query": "name_query.txt",
               "image_test": "name_test.txt"}
    for folder, files in names.items():
        (root / list_of[folder]).write_text("\n".join(files) + "\n")
    for extra in ("gt_image.txt", "jk_image.txt", "camera_ID.txt", "train_label.xml", "test_label.xml"):
        (root / extra).write_text("0002_c003_00084200_0.jpg\n")
    d = datasets.create("veri", tmp_path)
    for split, sub in (("train", "image_train"), ("query", "image_query"), ("gallery", "image_test")):
        assert ours(getattr(d, split)) == original_rule(root / sub, r"([-\d]+)_c([-\d]+)")
        assert len(getattr(d, split)) == len((root / list_of[sub]).read_text().split())   # = name_*.txt
    assert ("0776_c020_00084130_1.jpg", 776, 19) in ours(d.train)
