"""The naming quirks of the real datasets that the original's (SpCL-style) loaders accept, on trees
of empty files with the real datasets' composition (the loaders read names, not pixels), and the
counts the originals get from them."""
import logging

import pytest

from cdsm import datasets
from cdsm.errors import DatasetError

# Market-1501 names that end in '.jpg.jpg' in some copies (the PUL authors' query.list and test.list
# list them so): 6 query images, 18 bounding_box_test images (13 of id 1488, 3 distractors, 2 junk)
JPGJPG_QUERY = ["1488_c1s6_023021_00", "1488_c2s3_065527_00", "1488_c3s3_071344_00", "1488_c4s6_022241_00",
                "1488_c5s3_071737_00", "1488_c6s3_094992_00"]
JPGJPG_TEST = ["0000_c1s6_023071_04", "0000_c4s6_022316_04", "0000_c6s3_094992_01", "1488_c1s6_023021_02",
               "1488_c1s6_023071_05", "1488_c2s3_065527_02", "1488_c2s3_065552_02", "1488_c3s3_071344_02",
               "1488_c3s3_071369_01", "1488_c3s3_071419_03", "1488_c4s6_022241_02", "1488_c4s6_022291_05",
               "1488_c4s6_022316_08", "1488_c5s3_071737_01", "1488_c5s3_071762_01", "1488_c5s3_071862_01",
               "-1_c4s6_022316_11", "-1_c6s3_094992_04"]


def touch_all(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()
    (folder / "Thumbs.db").touch()  # Windows copies of the datasets carry one: not an image


def market_names(pids, count, cams, first_frame, quirk=()):
    """``count`` names over ``pids`` (round robin), of which the ``quirk`` ones end in .jpg.jpg."""
    names = [f"{q}.jpg.jpg" for q in quirk]
    for k in range(count - len(names)):
        names.append(f"{pids[k % len(pids)]:04d}_c{k % cams + 1}s1_{first_frame + k:06d}_00.jpg"
                     .replace("-001_", "-1_"))
    return names


@pytest.fixture(scope="module")
def market_tree(tmp_path_factory):
    """Market-1501's real composition: train 12,936 images of 751 ids; query 3,368 of 750 ids;
    bounding_box_test 19,732 files = 3,819 junk (-1) + 2,798 distractors (0000) + 13,115 images of
    the 750 test ids; 24 of the names end in .jpg.jpg."""
    root = tmp_path_factory.mktemp("market")
    d = root / "Market-1501-v15.09.15"
    test_ids, train_ids = list(range(2, 1501, 2)), list(range(1, 1502, 2))  # 750 / 751
    touch_all(d / "bounding_box_train", market_names(train_ids, 12936, 6, 0))
    touch_all(d / "query", market_names(test_ids, 3368, 6, 100000, JPGJPG_QUERY))
    junk = [q for q in JPGJPG_TEST if q.startswith("-1")]
    distractors = [q for q in JPGJPG_TEST if q.startswith("0000")]
    real = [q for q in JPGJPG_TEST if q.startswith("1488")]
    touch_all(d / "bounding_box_test",
              market_names([-1], 3819, 6, 200000, junk) + market_names([0], 2798, 6, 300000, distractors)
              + market_names(test_ids, 13115, 6, 400000, real))
    return root


def test_market_real_quirks_give_the_official_counts(market_tree, caplog):
    """Passed before this change too (the loader already globbed *.jpg and parsed the name)."""
    with caplog.at_level(logging.WARNING, logger="cdsm"):
        ds = datasets.create("market1501", market_tree, verbose=False)
    assert (len(ds.train), ds.info(ds.train)[0]) == (12936, 751)
    assert (len(ds.query), ds.info(ds.query)[0]) == (3368, 750)
    assert len(ds.gallery) == 15913                               # junk dropped, distractors kept
    assert sum(p == 0 for _, p, _ in ds.gallery) == 2798
    assert all(p != -1 for split in (ds.train, ds.query, ds.gallery) for _, p, _ in split)
    assert ds.check_counts() == [] and "official" not in caplog.text
    doubled = [(p, c) for path, p, c in ds.query + ds.gallery if path.endswith(".jpg.jpg")]
    assert len(doubled) == 22                                     # the 24 less the 2 junk ones
    assert sorted(doubled)[:3] == [(0, 0), (0, 3), (0, 5)] and (1488, 0) in doubled


def test_a_pid_field_that_is_not_a_number_names_the_file(tmp_path):
    """Failed before: '00-8' matches the original's regex [-\\d]+ and int() raised a ValueError."""
    d = tmp_path / "Market-1501-v15.09.15"
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        touch_all(d / sub, [f"0002_c1s1_00015{k}_01.jpg" for k in range(3)])
    (d / "bounding_box_train" / "00-8_c1s1_000151_01.jpg").touch()
    want = (r"00-8_c1s1_000151_01.jpg: file name does not follow the naming rule '<pid>_c<camera>...' of "
            r"Market-1501-v15.09.15: the pid field '00-8' is not a number")
    with pytest.raises(DatasetError, match=want):
        datasets.create("market1501", tmp_path, verbose=False)


def test_duke_real_composition_gives_the_official_counts(tmp_path, caplog):
    """DukeMTMC-reID: 16,522 train images of 702 ids, 2,228 query images of 702 ids, 17,661 gallery
    images of 1,110 ids (the 702 test ids and 408 distractor ids seen only there); no junk.
    Passed before this change too."""
    d = tmp_path / "DukeMTMC-reID"
    train_ids, test_ids, distractor_ids = range(1, 703), range(703, 1405), range(5001, 5409)

    def names(pids, count, start):
        pids = list(pids)
        return [f"{pids[k % len(pids)]:04d}_c{k % 8 + 1}_f{start + k:07d}.jpg" for k in range(count)]

    touch_all(d / "bounding_box_train", names(train_ids, 16522, 0))
    touch_all(d / "query", names(test_ids, 2228, 100000))
    touch_all(d / "bounding_box_test",
              names(test_ids, 17661 - 408 * 3, 200000) + names(distractor_ids, 408 * 3, 300000))
    with caplog.at_level(logging.WARNING, logger="cdsm"):
        ds = datasets.create("dukemtmcreid", tmp_path, verbose=False)
    assert (len(ds.train), ds.info(ds.train)[0]) == (16522, 702)
    assert (len(ds.query), len(ds.gallery), ds.info(ds.gallery)[0]) == (2228, 17661, 1110)
    assert {c for _, _, c in ds.gallery} == set(range(8))
    assert ds.check_counts() == [] and "official" not in caplog.text


def msmt_tree(root, crlf=False):
    """MSMT17_V1 in its official form: train/<pid>/..., test/<pid>/..., list_{train,val,query,
    gallery}.txt with lines '<pid>/<name> <pid>'; list_val's ids are train ids; train and test pids
    both start at 0."""
    d = root / "MSMT17_V1"
    lists = {"list_train.txt": [], "list_val.txt": [], "list_query.txt": [], "list_gallery.txt": []}

    def add(list_name, folder, pid, k, cam):
        rel = f"{pid:04d}/{pid:04d}_{k:03d}_{cam:02d}_0303morning_{k:04d}_0.jpg"
        (d / folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / folder / rel).touch()
        lists[list_name].append(f"{rel} {pid}")

    for pid in range(6):                                  # 6 train ids, one image of each in list_val
        for k in range(5):
            add("list_val.txt" if k == 0 else "list_train.txt", "train", pid, k, k % 15 + 1)
    for pid in range(4):                                  # 4 test ids, cameras up to 15
        add("list_query.txt", "test", pid, 0, 15)
        for k in range(1, 4):
            add("list_gallery.txt", "test", pid, k, k)
    end = "\r\n" if crlf else "\n"
    for name, lines in lists.items():
        (d / name).write_bytes((end.join(lines) + end + end).encode())  # a blank last line, as some copies
    return d


@pytest.mark.parametrize("crlf", [False, True])
def test_msmt17_list_files_train_is_train_plus_val(tmp_path, crlf):
    """SpCL's MSMT17 loader: train = list_train + list_val (val's ids are train ids), camera from the
    third field of the name, pid from the list. Passed before this change too."""
    d = msmt_tree(tmp_path, crlf)
    ds = datasets.create("msmt17", tmp_path, verbose=False)
    assert (len(ds.train), ds.info(ds.train)[0]) == (30, 6)
    assert (len(ds.query), len(ds.gallery)) == (4, 12)
    assert {c for _, _, c in ds.query} == {14} and {c for _, _, c in ds.gallery} == {0, 1, 2}
    assert all(path.startswith(str((d / "train").resolve())) for path, _, _ in ds.train)


def test_msmt17_list_pid_that_is_not_a_number_names_the_line(tmp_path):
    """Failed before: int() raised a ValueError traceback."""
    d = msmt_tree(tmp_path)
    text = (d / "list_query.txt").read_text().replace(" 2\n", " 2x\n", 1)
    (d / "list_query.txt").write_text(text)
    with pytest.raises(DatasetError, match=r"list_query.txt:3: the pid '2x' is not a number"):
        datasets.create("msmt17", tmp_path, verbose=False)
