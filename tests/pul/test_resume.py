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
            "--epochs", "2", "--kmeans-n-init", "1", "--no-progress", "--seed", "5"]


def weights_of(path):
    from pul.model import load_model
    return [w.copy() for w in load_model(path, compile=False).get_weights()]


def test_resume_equals_uninterrupted(tiny_data, tmp_path, monkeypatch):
    train = import_train_script()
    monkeypatch.chdir(train.HERE.parent)
    assert train.main(tiny_args(tiny_data, tmp_path / "full")) == 0

    # stop after the 1st baseline epoch, then after epoch 1 of PUL iteration 2 (5th epoch end)
    from pul import training
    real = training.EpochHooks.on_epoch_end
    ends = {"n": 0, "stop_at": 1}

    def crashing(self, epoch, logs=None):
        real(self, epoch, logs)          # the checkpoint and state of this epoch are written
        ends["n"] += 1
        if ends["n"] == ends["stop_at"]:
            raise Stop()

    monkeypatch.setattr(training.EpochHooks, "on_epoch_end", crashing)
    part = tmp_path / "part"
    with pytest.raises(Stop):
        train.main(tiny_args(tiny_data, part))
    assert (part / "baseline" / "last.keras").is_file() and not (part / "baseline" / "0.keras").exists()
    ends.update(n=1, stop_at=5)
    with pytest.raises(Stop):
        train.main(tiny_args(tiny_data, part) + ["--resume"])
    state = json.loads((part / "state.json").read_text())
    assert (state["iteration"], state["epoch_done"], state["finished"]) == (2, 1, False)
    assert (part / "checkpoints" / "last.keras").is_file()
    ends.update(stop_at=-1)
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
