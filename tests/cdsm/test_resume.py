"""Resume: a run stopped after epoch 1 and resumed in a fresh model equals the uninterrupted run."""
import json

import pytest
import torch
from conftest import tiny_args

from cdsm import engine

TIMINGS = ("extract_s", "cluster_s", "train_s", "eval_s", "epoch_s", "seconds")


def assert_same(a, b, path="checkpoint"):
    if torch.is_tensor(a):
        assert torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k in TIMINGS or k == "elapsed":
                continue
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.mark.slow
def test_stop_and_resume_equals_uninterrupted(train_script, tiny_root, tmp_path, monkeypatch):
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert train_script.main(tiny_args(tiny_root, full)) == 0

    # the same run, killed right after writing its first checkpoint
    real_save = engine.save_checkpoint

    def save_then_stop(state, path):
        real_save(state, path)
        if path.name == "checkpoint.pth.tar":
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_script.main(tiny_args(tiny_root, parts))
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    stopped = torch.load(parts / "checkpoint.pth.tar", weights_only=True)
    assert stopped["epoch"] == 1

    torch.manual_seed(12345)  # a fresh process would start from other RNG states: they are restored
    ckpt = str(parts / "checkpoint.pth.tar")
    assert train_script.main(tiny_args(tiny_root, parts, "--resume", ckpt)) == 0

    a = torch.load(full / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(parts / "checkpoint.pth.tar", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in ("student", "teacher", "optimizer", "scheduler", "memory", "pseudo_labels", "rng", "history",
                "best", "best_epoch", "last", "initial"):
        assert_same(a[key], b[key], key)
    # the second epoch really trained: its weights differ from the stopped run's
    assert not torch.equal(a["student"]["base.0.weight"], stopped["student"]["base.0.weight"])
    ra = json.loads((full / "results.json").read_text())
    rb = json.loads((parts / "results.json").read_text())
    for key in ("common", "native", "initial", "last", "best_epoch"):
        assert ra[key] == rb[key]
    log = (parts / "log.txt").read_text()
    assert "==> epoch 0:" in log and "resumed from" in log and "==> epoch 1:" in log
