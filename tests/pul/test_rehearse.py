"""The rehearsal (adapter --rehearse [--full-model]): the paper preset cut to one baseline epoch and one
PUL iteration of one epoch, <= 20 batches each, from random init; and the per-iteration figures of
results.json (phase seconds, images, GPU peak) it is read for."""
import json
import os
import re
import subprocess

import pytest
import yaml
from conftest import PUL_DIR

from pul.data import BatchStream, steps_per_epoch


def adapter(tmp_path, *extra, target="market", data=None, timeout=120):
    data = data or tmp_path / "nodata"
    source = "market" if target == "duke" else "duke"
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([str(PUL_DIR / "reproduce.sh"), target, "--data-root", str(data / "b"),
                           "--logs-dir", str(tmp_path / "logs"), "--source", source,
                           "--source-root", str(data / "a"), *extra],
                          env=env, capture_output=True, text=True, timeout=timeout)


# the paper preset's values that set the size of the work: the rehearsal keeps them
PAPER = {"batch_size": 16, "lam": 0.85, "kmeans_n_init": 10, "kmeans_max_iter": 300, "selection": "code",
         "eval_every": 1, "mode": "unsupervised", "lr": 0.001}
SHORT = {"baseline_epochs": 1, "iterations": 1, "epochs": 1, "max_steps": 20, "pretrained": "none",
         "scale": "rehearsal"}


@pytest.mark.parametrize("target,k", [("market", 750), ("duke", 700), ("cuhk03", 750)])
def test_rehearse_print_config(tmp_path, target, k):
    out = adapter(tmp_path, "--rehearse", "--print-config", target=target)
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = yaml.safe_load(out.stdout)
    assert {k_: cfg[k_] for k_ in PAPER} == PAPER and cfg["num_clusters"] == k
    assert {k_: cfg[k_] for k_ in SHORT} == SHORT
    assert (cfg["arch"], cfg["base_width"], cfg["height"], cfg["width"]) == ("resnet18", 32, 64, 32)
    assert not (tmp_path / "logs").exists()


def test_rehearse_full_model_print_config(tmp_path):
    out = adapter(tmp_path, "--rehearse", "--full-model", "--amp", "off", "--print-config")
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = yaml.safe_load(out.stdout)
    assert {k: cfg[k] for k in PAPER} == PAPER and {k: cfg[k] for k in SHORT} == SHORT
    assert (cfg["arch"], cfg["height"], cfg["width"], cfg["last_stride"]) == ("resnet50", 224, 224, 2)


@pytest.mark.parametrize("extra,message", [
    (["--rehearse", "--amp", "fp16"], "--amp fp16: PUL has no mixed precision"),
    (["--rehearse", "--amp=bf16"], "--amp bf16: PUL has no mixed precision"),
    (["--rehearse", "--full-model", "--torchrun"], "--torchrun does not apply to PUL"),
    (["--full-model"], "--full-model goes with --rehearse"),
    (["--rehearse", "--smoke"], "--smoke and --rehearse are two different presets"),
])
def test_what_pul_cannot_do_is_one_line(tmp_path, extra, message):
    out = adapter(tmp_path, *extra, "--print-config")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [out.stderr.strip()] and out.stderr.startswith("pul/reproduce.sh: ")
    assert message in out.stderr


def test_max_steps_caps_an_epoch_and_images_seen_counts_short_batches():
    assert steps_per_epoch(1000, 16) == 64 and steps_per_epoch(1000, 16, 20) == 20
    assert steps_per_epoch(40, 16, 20) == 4 and steps_per_epoch(40, 16, None) == 4
    import numpy as np
    stream = BatchStream(np.zeros((40, 2, 2, 3), np.uint8), np.zeros((40, 1)), 16, seed=(0,))
    for g in range(8):   # passes of 16 + 16 + 8 images
        assert stream.images_seen(g) == sum(len(stream.indices(i)) for i in range(g))


@pytest.mark.slow  # trains the baseline and one iteration (about a minute on 2 cores)
def test_a_rehearsal_run(tiny_data, tmp_path):
    """The real --rehearse run on the tiny synthetic pair. K is the one paper value changed: the tiny
    target has far fewer than 750 images (k-means needs K <= N), so K = its identity count."""
    from pul.datasets import init_dataset
    out = adapter(tmp_path, "--rehearse", "--", "--num-clusters", "auto", "--no-progress", data=tiny_data,
                  timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"-> {tmp_path / 'logs'}" in out.stdout
    r = json.loads((tmp_path / "logs" / "results.json").read_text())
    assert r["config"]["arch"] == "resnet18" and r["config"]["max_steps"] == 20
    assert len(r["history"]) == 1 and r["scale"] == "rehearsal"
    h = r["history"][0]
    assert {"extract", "cluster", "train", "evaluate"} <= set(h["seconds"])
    assert all(v >= 0 for v in h["seconds"].values()) and h["seconds"]["evaluate"] > 0
    assert 0 < h["images"]["train"] <= 20 * 16
    assert h["images"]["extract"] == len(init_dataset("market1501", str(tiny_data / "b")).train)
    assert h["gpu_peak_mb"] is None
    log = (tmp_path / "logs" / "log.txt").read_text()
    assert "1 epochs" in log and "epochs 1..1" in log
    steps = [int(n) for n in re.findall(r"(\d+) steps/epoch", log)]
    assert len(steps) == 2 and all(0 < n <= 20 for n in steps)   # the baseline's and the iteration's
