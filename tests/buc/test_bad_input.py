"""Bad input: missing dataset, corrupted image, NaN loss, merge schedules that cannot work."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_argv
from train import main

from buc import datasets
from buc.bottom_up import BottomUp
from buc.models import create
from buc.trainers import NaNLossError
from buc.utils.data import CorruptImageError, Preprocessor
from buc.utils.data import transforms as T


def copy_market(tiny_root, dst):
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", dst / "Market-1501-v15.09.15")
    shutil.copy(tiny_root / "Market-1501-v15.09.15.synthetic.json", dst)
    return dst / "Market-1501-v15.09.15"


def test_missing_dataset_stops_with_the_expected_folder(tmp_path, capsys):
    assert main(tiny_argv(tmp_path / "data", tmp_path / "logs")) == 2
    err = capsys.readouterr().err
    assert "dataset 'market1501' not found" in err and str(tmp_path / "data" / "Market-1501-v15.09.15") in err
    assert "not found" in (tmp_path / "logs" / "log.txt").read_text()


def test_corrupted_jpeg_names_the_file(tiny_root, tmp_path, capsys):
    official = copy_market(tiny_root, tmp_path)
    victim = sorted((official / "query").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])                 # truncated JPEG
    assert main(tiny_argv(tmp_path, tmp_path / "logs", "--link", "copy")) == 2
    err = capsys.readouterr().err
    assert "cannot decode image" in err and f"Market-1501-v15.09.15/query/{victim.name}" in err


def test_preprocessor_error_without_origin(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    p = Preprocessor([("x.jpg",)], str(tmp_path), T.test_transform(64, 32))
    with pytest.raises(CorruptImageError, match=r"x\.jpg"):
        p[0]


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_nan_loss_stops_naming_step_and_epoch(tiny_root, amp):
    ds = datasets.create("market1501", tiny_root, verbose=False)
    model = create("resnet18", pretrained="none", embedding_size=16)
    with torch.no_grad():
        model.avg_pooling.embedding.weight.fill_(float("nan"))
    bu = BottomUp(model, [r[0] for r in ds.train], ds.images_dir, is_video=False, height=64, width=32,
                  workers=0, embedding_size=16, batch_size=8, progress=False, initial_epochs=1, amp=amp)
    bu.criterion.V.fill_(0.1)              # a zero memory would hide the NaN in the first batch
    with pytest.raises(NaNLossError, match=r"step 0, epoch 0, iteration 1/") as e:
        bu.train(np.arange(len(ds.train)), 0)
    # bf16 on a CPU: the message also names oneDNN's small-feature-map bug (root README)
    assert ("bf16 on a CPU, inputs under 48 pixels wide" in str(e.value)) == (amp == "bf16")


@pytest.mark.parametrize("flags,message", [
    (["-mp", "1.0"], "every sample would be merged into one cluster"),
    (["-mp", "0.3", "--steps", "5"], "would leave 1 cluster: every sample would end up in one cluster"),
    (["-mp", "0.6"], "gives 0 steps"),
    (["-mp", "0.01", "--steps", "3"], "nothing to merge"),
])
def test_impossible_merge_schedules_stop_before_training(tiny_root, tmp_path, capsys, flags, message):
    assert main(tiny_argv(tiny_root, tmp_path / "logs", *flags)) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "logs" / "checkpoint.pth.tar").exists()      # stopped before any work
