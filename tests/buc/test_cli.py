"""train.py flags (the original's defaults), presets, run.sh and the reproduce.sh adapter."""
from __future__ import annotations

import os
import subprocess

import pytest
from conftest import BUC
from train import parse_args, resolved_config


def test_defaults_are_the_originals():
    a = parse_args([])
    assert (a.dataset, a.batch_size, a.fea, a.arch, a.max_frames, a.loss) == \
        ("mars", 16, 2048, "avg_pool", 900, "ExLoss")
    assert (a.momentum, a.step_size, a.size_penalty, a.merge_percent) == (0.5, 55, 0.005, 0.05)
    assert (a.initial_steps, a.later_steps, a.lr, a.later_lr, a.lr_step_size) == (20, None, 0.1, 0.01, 16)
    assert (a.height, a.width, a.workers, a.dropout, a.t) == (256, 128, 6, 0.5, 10.0)
    assert a.pretrained == "imagenet"
    assert a.steps is None and a.fixed_layer == "auto" and a.metric == "euclidean"


def test_smoke_presets_and_overrides():
    a = parse_args(["--smoke", "-d", "market1501"])
    assert (a.arch, a.pretrained, a.height, a.width) == ("resnet18", "none", 64, 32)
    assert (a.workers, a.threads) == (0, 2)
    assert a.data_dir.endswith(os.path.join("data", "synthetic", "a"))
    v = parse_args(["--smoke", "-d", "dukevideo", "-mp", "0.25", "--data_dir", "/x"])
    assert v.frames_per_video is not None and v.merge_percent == 0.25 and v.data_dir == "/x"


def test_run_sh_keeps_the_original_settings():
    text = (BUC / "run.sh").read_text()
    for line in ("dataset=market1501", "batchSize=16", "size_penalty=0.003", "merge_percent=0.05",
                 "logs=logs/$dataset"):
        assert line in text


def adapter(*args):
    env = {**os.environ, "PYTHON": "/bin/echo"}          # show the train.py command instead of running it
    return subprocess.run([str(BUC / "reproduce.sh"), *args], capture_output=True, text=True, env=env)


def test_adapter_maps_targets_and_presets():
    out = adapter("dukevideo", "--data-root", "/d", "--logs-dir", "/l", "--", "--seed", "3")
    assert out.returncode == 0
    assert out.stdout.splitlines()[0] == "-> /l"                 # the wrapper names the run's folder
    assert out.stdout.splitlines()[-1].split() == [
        "examples/train.py", "--dataset", "DukeMTMC-VideoReID", "--data_dir", "/d", "--logs_dir", "/l",
        "-b", "16", "--size_penalty", "0.003", "-mp", "0.05", "--seed", "3"]
    smoke = adapter("market", "--data-root", "/d", "--logs-dir", "/l", "--smoke").stdout
    smoke = smoke.splitlines()[-1].split()
    assert "--smoke" in smoke and "-mp" not in smoke and smoke[2] == "market1501"
    bad = adapter("msmt17", "--data-root", "/d")
    assert bad.returncode == 2 and "valid: market duke mars dukevideo" in bad.stderr
    assert adapter("market", "--source", "duke").returncode == 2


def test_common_vocabulary_beside_the_original_flags(capsys):
    """--data-root, --logs-dir and the short dataset names (issue 18) beside --data_dir, --logs_dir
    and the original names; test.py takes --checkpoint PATH and the same names."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("buc_test_py", BUC / "examples" / "test.py")
    test_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_py)
    build_parser = test_py.build_parser
    a = parse_args(["-d", "dukevideo", "--data-root", "/d", "--logs-dir", "/l"])
    b = parse_args(["-d", "DukeMTMC-VideoReID", "--data_dir", "/d", "--logs_dir", "/l"])
    assert (a.data_dir, a.logs_dir) == (b.data_dir, b.logs_dir) == ("/d", "/l")
    assert resolved_config(vars(a)) == {**resolved_config(vars(b)), "dataset": "DukeMTMC-VideoReID"}
    for short, name in (("market", "market1501"), ("duke", "duke"), ("mars", "mars")):
        assert resolved_config(vars(parse_args(["-d", short])))["dataset"] == name
    with pytest.raises(SystemExit) as exc:
        parse_args(["-d", "msmt17"])
    assert exc.value.code == 2 and "unknown dataset 'msmt17'" in capsys.readouterr().err
    t = build_parser().parse_args(["--checkpoint", "x.pth.tar", "--data-root", "/d", "-d", "market"])
    assert (t.checkpoint, t.data_dir, t.dataset) == ("x.pth.tar", "/d", "market")
