"""Resume: a run stopped after its DBSCAN warm-up epoch and again after its first HDC epoch,
each time continued in a fresh model, ends exactly like the uninterrupted run (weights, Adam,
schedule, memory, pseudo-labels, RNG states, best metric, history)."""
import json

import pytest
import torch
from conftest import tiny_args

from ccc import engine

TIMINGS = ("extract_s", "cluster_s", "train_s", "eval_s", "seconds", "gpu_peak_mb", "elapsed")


def assert_same(a, b, path="checkpoint"):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k not in TIMINGS:
                assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.slow
def test_stop_and_resume_equals_uninterrupted(train_script, tiny_run, tiny_root, tmp_path, monkeypatch):
    parts = tmp_path / "parts"
    args = tiny_args(tiny_root, parts, "--num-epochs", "3")
    real_save = engine.save_checkpoint
    stop = {"after": 1}

    def save_then_stop(state, path):      # killed right after writing the epoch's checkpoint
        real_save(state, path)
        if path.name == "checkpoint.pth.tar" and state["epoch"] == stop["after"]:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "save_checkpoint", save_then_stop)   # ccc.engine.save_epoch writes
    ckpt = parts / "checkpoint.pth.tar"
    with pytest.raises(KeyboardInterrupt):
        train_script.main(args)                                   # stops after the warm-up epoch
    warmup = torch.load(ckpt, weights_only=True)
    assert warmup["epoch"] == 1 and warmup["history"][0]["clustering"] == "DBSCAN warm-up"
    stop["after"] = 2
    torch.manual_seed(12345)      # a fresh process would start from other RNG states: they are restored
    with pytest.raises(KeyboardInterrupt):
        train_script.main(args + ["--resume", str(ckpt)])        # first HDC epoch, then stops
    assert torch.load(ckpt, weights_only=True)["history"][1]["clustering"] == "HDC"
    stop["after"] = None
    torch.manual_seed(54321)
    assert train_script.main(args + ["--resume", str(ckpt)]) == 0

    a = torch.load(tiny_run / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key in ("model", "optimizer", "scheduler", "memory", "pseudo_labels", "rng", "history", "best",
                "best_epoch", "last", "initial"):
        assert_same(a[key], b[key], key)
    assert not torch.equal(a["model"]["base.0.weight"], warmup["model"]["base.0.weight"])
    ra = json.loads((tiny_run / "results.json").read_text())
    rb = json.loads((parts / "results.json").read_text())
    for key in ("common", "native", "initial", "last", "best_epoch", "selection"):
        assert ra[key] == rb[key]
    log = (parts / "log.txt").read_text()
    assert log.count("resumed from") == 2
    assert "==> epoch 0: DBSCAN warm-up" in log and "==> epoch 2: HDC" in log
