"""The auxiliary information regenerated from frame names, against values worked out by hand,
and the refusal of files that do not match the dataset."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import AUXUSL_DIR

from auxusl.auxinfo import fit_sts, overlaps, timeline
from auxusl.auxinfo.store import (
    FILES,
    load_cannotlinks,
    load_overlap_infer,
    load_same_camera_infer,
    load_same_camera_train,
    load_sts_infer,
    load_sts_train,
)
from auxusl.datasets import create
from auxusl.errors import AuxInfoError
from auxusl.tools import make_aux

# DukeMTMC's camera offsets: cam 1 starts at 5543, cam 2 at 3607, cam 3 at 27244, cam 5 at 1
# (global = X + start - 1). By hand, from conftest.TINY_TREE:
#   train T1 0001/0001 cam 1: 6542..6590   T2 0001/0002 cam 2: 8606..8630
#         T3 0002/0001 cam 1: 6582..6618   T4 0003/0001 cam 5: 6600..6612
#   query Q 0007/0001 cam 2: 8616..8628
#   gallery G1 0007/0002 cam 1: 8642..8666  G2 0008/0001 cam 2: 8626..8662  G3 0009/0001 cam 3: 27343..27355
# Overlaps: T1-T3 (6582 <= 6590), T3-T4 (6600 <= 6612); Q-G2 (8626 <= 8628); nothing else.


def make(tiny_duke, tmp_path, mode="all", step=32):
    out = tmp_path / f"aux-{mode}-{step}"
    rc = make_aux.main(
        [
            "--dataset",
            "dukevideo",
            "--data-root",
            str(tiny_duke.parent),
            "--mode",
            mode,
            "--dense-step",
            str(step),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    return out, create("duke", tiny_duke, mode=mode, dense_step=step, verbose=False)


def test_timeline_by_hand(tiny_duke):
    d = create("duke", tiny_duke, verbose=False)
    t = timeline([f for f, _, _ in d.train])
    assert t.cameras.tolist() == [1, 2, 1, 5]
    assert t.x_first.tolist() == [1000, 5000, 1040, 6600] and t.x_last.tolist() == [1048, 5024, 1076, 6612]
    assert t.start.tolist() == [6542, 8606, 6582, 6600] and t.end.tolist() == [6590, 8630, 6618, 6612]
    ov = overlaps(t, t)
    assert sorted(map(tuple, np.argwhere(np.triu(ov, 1)).tolist())) == [(0, 2), (2, 3)]


def test_generated_files_equal_the_hand_worked_relations(tiny_duke, tmp_path):
    out, d = make(tiny_duke, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(list(FILES.values()) + ["aux_info.json"])
    keys = d.keys(d.train)
    assert keys[0] == "train/0001/0001/0001_C1_F0001_X01000.jpg..0001_C1_F0005_X01048.jpg"
    cl = load_cannotlinks(out / FILES[("toc", "train")], keys)
    assert cl == [{2}, set(), {0, 3}, {2}]
    scp = load_same_camera_train(out / FILES[("scp", "train")], keys)
    want = np.eye(4)
    want[0, 2] = want[2, 0] = 1
    np.testing.assert_array_equal(scp, want)
    q, g = d.keys(d.query), d.keys(d.gallery)
    assert [k.split("/")[1:3] for k in g] == [["0007", "0002"], ["0008", "0001"], ["0009", "0001"]]
    np.testing.assert_array_equal(load_overlap_infer(out / FILES[("toc", "infer")], q, g), [[0, 1, 0]])
    np.testing.assert_array_equal(load_same_camera_infer(out / FILES[("scp", "infer")], q, g), [[0, 1, 0]])
    P = load_sts_infer(out / FILES[("sts", "infer")], q, g)
    assert P.shape == (1, 3) and P[0, 1] == 0.0 and ((P >= 0) & (P <= 1)).all()
    Pt = load_sts_train(out / FILES[("sts", "train")], keys)
    np.testing.assert_array_equal(Pt, Pt.T)
    assert Pt[0, 2] == 0 and Pt[2, 3] == 0  # overlapping pairs are implausible
    info = json.loads((out / "aux_info.json").read_text())
    assert info["train_cannot_link_pairs"] == 2 and info["query_gallery_overlaps"] == 1


def test_dense_chunks_by_hand(tiny_duke, tmp_path):
    # step 2: T1 (5 frames) -> F1-2, F3-5; T2 (3) -> whole; T3 (4) -> F1-2, F3-4; T4 (2) -> whole.
    # chunk clocks: T1a 6542..6554, T1b 6566..6590, T3a 6582..6594, T3b 6606..6618, T4 6600..6612
    # overlaps: T1b-T3a, T3b-T4 (chunks of one tracklet never overlap)
    out, d = make(tiny_duke, tmp_path, "dense", 2)
    keys = d.keys(d.train)
    assert [len(f) for f, _, _ in d.train] == [2, 3, 3, 2, 2, 2]
    assert keys[1] == "train/0001/0001/0001_C1_F0003_X01024.jpg..0001_C1_F0005_X01048.jpg"
    order = {k: i for i, k in enumerate(keys)}
    t1b, t3a, t3b, t4 = order[keys[1]], order[keys[3]], order[keys[4]], order[keys[5]]
    cl = load_cannotlinks(out / FILES[("toc", "train")], keys)
    assert cl[t1b] == {t3a} and cl[t3b] == {t4} and cl[0] == set() and cl[2] == set()


def test_chunks_of_one_tracklet_get_no_sts_penalty(tiny_duke, tmp_path):
    """Dense chunks of one tracklet are the same person: p = 1 (factor 1 + 0.6 e^-8, no
    penalty), not the fitted value of a same-camera pair a fraction of a second apart (0 here:
    the x1.6 maximum); every other pair keeps the model's value."""
    from auxusl.cluster.distance import sts_factor

    out, d = make(tiny_duke, tmp_path, "dense", 2)
    keys = d.keys(d.train)
    P = load_sts_train(out / FILES[("sts", "train")], keys)
    folder = [k.rsplit("/", 1)[0] for k in keys]
    same = np.array([[a == b for b in folder] for a in folder])
    assert same.sum() > len(keys)  # there are chunk pairs of one tracklet
    assert (P[same] == 1.0).all()
    assert (sts_factor(P, 0.6, 8.0)[same] < 1.001).all()
    model = fit_sts(timeline([f for f, _, _ in d.train_whole]), num_cameras=8)
    fitted = model.plausibility(timeline([f for f, _, _ in d.train]), timeline([f for f, _, _ in d.train]))
    assert (fitted[same & ~np.eye(len(keys), dtype=bool)] == 0).all()  # what the model says: x1.6
    np.testing.assert_array_equal(P[~same], fitted[~same])


def test_keys_not_list_order(tiny_duke, tmp_path):
    """Rows are found by key: a shuffled key order gets the same relation, permuted."""
    out, d = make(tiny_duke, tmp_path)
    keys = d.keys(d.train)
    perm = [3, 1, 0, 2]
    cl = load_cannotlinks(out / FILES[("toc", "train")], [keys[i] for i in perm])
    assert cl == [{3}, set(), {3}, {0, 2}]


def test_mismatched_information_is_refused(tiny_duke, tmp_path):
    out, d = make(tiny_duke, tmp_path)
    keys = d.keys(d.train)
    with pytest.raises(
        AuxInfoError,
        match=r"does not match the dataset: 1 of the dataset's 5 training tracklets "
        r"are not in it \(e\.g\. train/0099",
    ):
        load_cannotlinks(out / FILES[("toc", "train")], keys + ["train/0099/0001/a.jpg..b.jpg"])
    with pytest.raises(AuxInfoError, match=r"1 of its 4 keys are not in the dataset"):
        load_same_camera_train(out / FILES[("scp", "train")], keys[:3])
    # a dataset cut into chunks does not fit files made for whole tracklets
    dense = create("duke", tiny_duke, mode="dense", dense_step=2, verbose=False)
    with pytest.raises(
        AuxInfoError, match=r"made for dukevideo mode=all dense_step=32\); regenerate it with: python -m"
    ):
        load_sts_train(
            out / FILES[("sts", "train")], dense.keys(dense.train), regenerate="python -m auxusl.tools..."
        )
    # a file used for the wrong relation
    with pytest.raises(
        AuxInfoError,
        match="holds the toc relation of the train split, but it is configured as the scp relation",
    ):
        load_same_camera_train(out / FILES[("toc", "train")], keys)
    # cameras that disagree with the dataset's frame names
    with pytest.raises(AuxInfoError, match="have another camera"):
        load_same_camera_train(out / FILES[("scp", "train")], keys, cameras=[1, 2, 1, 6])


def test_original_pickles_and_missing_files_are_refused(tiny_duke, tmp_path):
    _, d = make(tiny_duke, tmp_path)
    fake = tmp_path / "cannotlink_pts.pickle"
    fake.write_bytes(pickle.dumps([set(), {0}]))  # the original's index-ordered format
    with pytest.raises(AuxInfoError, match="not an auxusl auxiliary-information file.*list order"):
        load_cannotlinks(fake, d.keys(d.train))
    with pytest.raises(AuxInfoError, match="does not exist"):
        load_cannotlinks(tmp_path / "nothing.npz", d.keys(d.train))


def test_mars_has_no_time_stamps(tmp_path, capsys):
    rc = make_aux.main(["--dataset", "mars", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2 and "MARS frame names carry no time stamps" in capsys.readouterr().err


def test_make_aux_from_the_duke_config(tiny_duke, tmp_path):
    """--config-file takes DATASETS.MODE / DENSE_STEP from the config (here overridden on the line)."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "auxusl.tools.make_aux",
            "--config-file",
            str(AUXUSL_DIR / "configs" / "USL_MTCluster_Duke.yml"),
            "--data-root",
            str(tiny_duke.parent),
            "--out",
            str(tmp_path / "o"),
            "DATASETS.DENSE_STEP",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    info = json.loads((tmp_path / "o" / "aux_info.json").read_text())
    assert info["mode"] == "dense" and info["dense_step"] == 2 and info["train_tracklets"] == 6


def test_sts_estimator_finds_excess_transitions():
    """Label-free: people who walk cam 1 -> cam 2 in ~20 s make that (pair, gap) plausible."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(300):  # random crowd in cams 1-4 over an hour
        c, x = int(rng.integers(1, 5)), int(rng.integers(50000, 250000))
        frames.append([f"0001_C{c}_F0001_X{x}.jpg", f"0001_C{c}_F0002_X{x + 120}.jpg"])
    for _ in range(150):  # transitions 1 -> 2, 16-32 s apart on the common clock
        x = int(rng.integers(50000, 250000))
        x2 = x + 120 + int(rng.integers(16 * 60, 32 * 60)) + 5543 - 3607
        frames.append([f"0001_C1_F0001_X{x}.jpg", f"0001_C1_F0002_X{x + 120}.jpg"])
        frames.append([f"0001_C2_F0001_X{x2}.jpg", f"0001_C2_F0002_X{x2 + 120}.jpg"])
    model = fit_sts(timeline(frames))
    k = model.bins(np.array([20.0]))[0]
    assert model.table[0, 1, k] == model.table[1, 0, k] == pytest.approx(1.0)
    assert model.table[2, 3, k] < 0.3 and model.table[0, 1, k + 3] < 0.3
    assert ((model.table >= 0) & (model.table <= 1)).all()
