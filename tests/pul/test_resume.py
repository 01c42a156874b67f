"""--resume: a run stopped inside the baseline and inside a PUL iteration's fine-tuning, then
resumed, ends with exactly the weights, selections and metrics of an uninterrupted run."""
import json

import numpy as np
import pytest
from conftest import import_train_script

pytestmark = pytest.mark.slow


class Stop(BaseException):
    """Simulated crash (not an Exception, so nothing in the run swallows it)."""


def tiny_args(data, logs):
    return ["--config", "configs/smoke.yaml", "--mode", "unsupervised",
            "--dataset", "market", "--data-root", str(data / "b"),
            "--source", "duke", "--source-root", str(data / "a"), "--logs-dir", str(logs),
            "--height", "32", "--width", "16", "--baseline-epochs", "2", "--iterations", "2",
            "--epochs", "2", "--kmeans-n-init", "1", "--no-progress", "--seed", "5", "--eval-every", "0"]


def weights_of(path):
    from pul.model import load_model
    return [w.copy() for w in load_model(path, compile=False).get_weights()]


def test_resume_equals_uninterrupted(tiny_data, tmp_path, monkeypatch):
    train = import_train_script()
    monkeypatch.chdir(train.HERE.parent)
    assert train.main(tiny_args(tiny_data, tmp_path / "full")) == 0

    # crash right after a state is written: inside the baseline (after its epoch 1), at the
    # boundary after PUL iteration 1, and inside iteration 2's fine-tuning (after its epoch 1)
    from pul.checkpoint import RunState
    real_save = RunState.save
    stops = [lambda st: st["stage"] == "baseline" and st["epoch_done"] == 1,
             lambda st: st["stage"] == "pul" and st["iteration"] == 1 and st["finished"],
             lambda st: st["stage"] == "pul" and st["iteration"] == 2 and st["epoch_done"] == 1]

    def crashing_save(self, state):
        real_save(self, state)
        if stops and stops[0](state):
            stops.pop(0)
            raise Stop()

    monkeypatch.setattr(RunState, "save", crashing_save)
    part = tmp_path / "part"
    with pytest.raises(Stop):
        train.main(tiny_args(tiny_data, part))
    assert (part / "baseline" / "last.keras").is_file() and not (part / "baseline" / "0.keras").exists()
    with pytest.raises(Stop):
        train.main(tiny_args(tiny_data, part) + ["--resume"])
    assert (part / "checkpoints" / "1.keras").is_file() and not (part / "selection_2.npz").exists()
    with pytest.raises(Stop):
        train.main(tiny_args(tiny_data, part) + ["--resume"])
    state = json.loads((part / "state.json").read_text())
    assert (state["iteration"], state["epoch_done"], state["finished"]) == (2, 1, False)
    assert (part / "checkpoints" / "last.keras").is_file()
    assert not stops
    assert train.main(tiny_args(tiny_data, part) + ["--resume"]) == 0

    full, resumed = tmp_path / "full", part
    for ckpt in ("baseline/0.keras", "checkpoints/1.keras", "checkpoints/2.keras"):
        a, b = weights_of(full / ckpt), weights_of(resumed / ckpt)
        assert len(a) == len(b)
        assert all(np.array_equal(x, y) for x, y in zip(a, b)), ckpt
    for t in (1, 2):
        with np.load(full / f"selection_{t}.npz") as za, np.load(resumed / f"selection_{t}.npz") as zb:
            for k in ("train_indices", "train_labels", "kmeans_labels"):
                np.testing.assert_array_equal(za[k], zb[k])
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (full, resumed))
    assert ra["native"] == rb["native"] and ra["common"] == rb["common"] and ra["initial"] == rb["initial"]
    assert [h["selected"] for h in ra["history"]] == [h["selected"] for h in rb["history"]]
    assert not (resumed / "checkpoints" / "last.keras").exists()

    # the semi-supervised variant from the same baseline: 2 known identities keep labels 0-1, the
    # other images are clustered (K = num_ids - known) and get labels 2..num_ids-1
    semi = tmp_path / "semi"
    argv = tiny_args(tiny_data, semi) + ["--mode", "semi", "--baseline", str(full / "baseline" / "0.keras"),
                                         "--known", "2", "--num-ids", "6", "--iterations", "1",
                                         "--epochs", "1"]
    assert train.main(argv) == 0
    rs = json.loads((semi / "results.json").read_text())
    assert rs["variant"] == "semi" and rs["num_clusters"] == 4
    from pul.datasets import init_dataset
    ds = init_dataset("market", tiny_data / "b")
    known = np.array(ds.known_labels(2))
    with np.load(semi / "selection_1.npz") as z:
        idx, lab = z["train_indices"], z["train_labels"]
    n_known = int((known >= 0).sum())
    np.testing.assert_array_equal(idx[:n_known], np.flatnonzero(known >= 0))
    np.testing.assert_array_equal(lab[:n_known], known[known >= 0])
    assert (known[idx[n_known:]] == -1).all() and lab[n_known:].min() >= 2 and lab.max() <= 5
