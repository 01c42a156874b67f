"""The adapter's rehearsal (issue 20): the paper preset for one merge step on a small model
(--rehearse), the real model (--full-model), --amp and --torchrun, and the phase seconds, image
counts and GPU peak of every results.json history entry."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from conftest import BUC

PAPER = {"batch_size": 16, "size_penalty": 0.003, "merge_percent": 0.05, "steps": 19, "fea": 2048,
         "workers": 6, "eval_every": 1, "cache_images": False}


def adapter(*args, python=None, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"PYTHON": python} if python else {})}
    return subprocess.run([str(BUC / "reproduce.sh"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def printed_config(*args) -> dict:
    out = adapter(*args, "--data-root", "/d", "--logs-dir", "/l", "--print-config")
    assert out.returncode == 0, out.stderr
    assert "->" not in out.stdout   # the config alone
    return yaml.safe_load(out.stdout)


@pytest.mark.parametrize("target, video", [("market", False), ("dukevideo", True)])
def test_rehearse_is_the_paper_preset_for_one_short_step(target, video):
    c = printed_config(target, "--rehearse")
    assert (c["arch"], c["pretrained"], c["height"], c["width"]) == ("resnet18", "none", 64, 32)
    assert c["initial_steps"] == 1 and c["run_steps"] == 1 and 1 <= c["max_iters"] <= 20
    assert {k: c[k] for k in PAPER} == PAPER and c["smoke"] is False
    frames = (16, 900, 1) if video else (1, 900, 64)   # training frames, evaluation frames and batch
    assert (c["frames_per_video"], c["max_frames"], c["eval_batch_size"]) == frames
    assert c["fixed_layer"] == ("yes" if video else "no") and c["amp"] == "off"


def test_full_model_keeps_resnet50_at_256x128_from_random_init():
    c = printed_config("market", "--rehearse", "--full-model", "--nproc", "1", "--torchrun", "--amp", "fp16")
    assert (c["arch"], c["pretrained"], c["height"], c["width"], c["amp"]) == \
        ("avg_pool", "none", 256, 128, "fp16")
    assert c["initial_steps"] == 1 and c["run_steps"] == 1 and c["max_iters"] == 20
    assert {k: c[k] for k in PAPER} == PAPER


def test_torchrun_amp_and_refused_combinations(tmp_path):
    cmd = ("market", "--data-root", "/d", "--logs-dir", "/l", "--rehearse")
    out = adapter(*cmd, "--torchrun", "--amp", "bf16", python="/bin/echo")
    assert out.returncode == 0 and out.stdout.splitlines()[0] == "-> /l"
    line = out.stdout.splitlines()[-1]
    assert line.startswith("-m torch.distributed.run --standalone --nproc_per_node=1 examples/train.py")
    assert "--amp bf16" in line
    assert "torch.distributed" not in adapter(*cmd, python="/bin/echo").stdout
    for bad, message in ((("--full-model",), "--full-model goes with --rehearse"),
                         (("--rehearse", "--smoke"), "drop --smoke")):
        out = adapter("market", "--data-root", "/d", "--logs-dir", "/l", *bad, python="/bin/echo")
        assert out.returncode == 2 and message in out.stderr
    out = adapter(*cmd, "--amp", "fp8", "--print-config")
    assert out.returncode == 2 and "--amp" in out.stderr


def check_rehearsal(logs) -> dict:
    res = json.loads((logs / "results.json").read_text())
    assert len(res["history"]) == 1 and res["epochs"] == 1 and res["scale"] == "rehearsal"
    entry = res["history"][0]
    seconds = entry["seconds"]
    assert {"train", "evaluate", "extract", "cluster"} <= set(seconds) and min(seconds.values()) >= 0
    assert seconds["cluster"] == seconds["merge"] and seconds["extract"] > 0
    assert 0 < entry["images"]["train"] <= 20 * 16
    assert entry["images"]["extract"] == res["dataset"]["train"]["images"]   # every training image
    assert entry["gpu_peak_mb"] is None and "native" in entry   # evaluated, merged
    assert "merge_purity" in entry
    return res


@pytest.mark.slow
def test_a_rehearsal_runs_one_merge_step(market_root, tmp_path):
    logs = tmp_path / "rehearsal"
    out = adapter("market", "--data-root", str(market_root), "--logs-dir", str(logs), "--rehearse",
                  "--", "--no-progress", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.splitlines()[0] == f"-> {logs}"
    check_rehearsal(logs)
    assert "step 0 seconds: train" in (logs / "log.txt").read_text()


@pytest.mark.slow
def test_a_rehearsal_under_torchrun_with_one_process(market_root, tmp_path):
    """--torchrun at --nproc 1 (the GPU check's path): DistributedDataParallel over gloo here."""
    logs = tmp_path / "torchrun"
    out = adapter("market", "--data-root", str(market_root), "--logs-dir", str(logs), "--rehearse",
                  "--nproc", "1", "--torchrun", "--", "--no-progress", timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    check_rehearsal(logs)
    assert "DistributedDataParallel over 1 process" in (logs / "log.txt").read_text()
