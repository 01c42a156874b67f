"""Resume inside a step and at a step boundary gives exactly the uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_argv, untimed
from train import main

from buc.utils.serialization import load_checkpoint


@pytest.mark.slow
def test_interrupted_and_resumed_equals_uninterrupted(tiny_root, tmp_path):
    # about 50 samples, -mp 0.2: 4 steps of 2 + 1 + 1 + 1 epochs, int(0.2 N) merges per step
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert main(tiny_argv(tiny_root, full)) == 0
    # stop inside step 0 (after its first epoch), then at the boundary after step 1, then finish
    assert main(tiny_argv(tiny_root, parts, "--stop_after_epochs", "1")) == 0
    mid = load_checkpoint(parts / "checkpoint.pth.tar")
    assert (mid["step"], mid["epoch"]) == (0, 1) and mid["optimizer"] is not None
    assert main(tiny_argv(tiny_root, parts, "--resume", "--stop_after_steps", "2")) == 0
    edge = load_checkpoint(parts / "checkpoint.pth.tar")
    assert (edge["step"], edge["epoch"]) == (2, 0) and edge["optimizer"] is None
    assert main(tiny_argv(tiny_root, parts, "--resume")) == 0

    a, b = load_checkpoint(full / "checkpoint.pth.tar"), load_checkpoint(parts / "checkpoint.pth.tar")
    assert a["step"] == b["step"] == 4
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["memory"], b["memory"]) and torch.count_nonzero(a["memory"]) > 0
    n = len(a["labels"])
    assert np.array_equal(a["labels"], b["labels"]) and a["labels"].max() + 1 == n - 3 * int(n * 0.2)
    assert untimed(a["history"]) == untimed(b["history"]) and untimed([a["best"]]) == untimed([b["best"]])
    ra = json.loads((full / "results.json").read_text())
    rb = json.loads((parts / "results.json").read_text())
    for key in ("common", "native", "initial", "last", "epochs"):
        assert ra[key] == rb[key]
    assert untimed(ra["history"]) == untimed(rb["history"])
    log = (parts / "log.txt").read_text()
    assert "resumed from step 0, epoch 1" in log and "resumed from step 2, epoch 0" in log
