"""Rehearsal (cost at paper scale) through the adapter: ``cdsm/reproduce.sh TARGET --rehearse``
[--full-model] [--amp MODE] [--torchrun], and the cost keys of results.json's history."""
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import CDSM_DIR

from cdsm import datasets
from common_eval.synthetic import generate

ADAPTER = str(CDSM_DIR / "reproduce.sh")
ENV = dict(os.environ, CDSM_PYTHON=sys.executable, OMP_NUM_THREADS="1")
# what --rehearse changes in the paper preset, and what --full-model keeps of it
REHEARSE = {"epochs": 1, "iters": 20, "pretrained": "none", "arch": "resnet18", "height": 64, "width": 32,
            "scale": "rehearsal"}
FULL = {"epochs": 1, "iters": 20, "pretrained": "none", "scale": "rehearsal"}


def adapter(*args, timeout=120):
    return subprocess.run([ADAPTER, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def printed(tmp_path, *flags) -> dict:
    """`cdsm/reproduce.sh market FLAGS --print-config`, a real process."""
    p = adapter("market", "--data-root", str(tmp_path / "d"), "--logs-dir", str(tmp_path / "l"), *flags,
                "--print-config")
    assert p.returncode == 0, p.stderr
    assert not (tmp_path / "l").exists()
    return yaml.safe_load(p.stdout)


def preset(train_script, tmp_path, *configs) -> dict:
    """The configuration of train.py --config configs/C.yml ... (in this process)."""
    argv = [a for c in configs for a in ("--config", str(CDSM_DIR / "configs" / f"{c}.yml"))]
    paths = ["--data-dir", str(tmp_path / "d"), "--logs-dir", str(tmp_path / "l")]
    return train_script.config_of(train_script.parse_args([*argv, *paths]))


def changed(paper: dict, other: dict) -> dict:
    return {k: v for k, v in other.items() if paper[k] != v}


def test_rehearse_changes_only_the_model_epochs_and_iterations(train_script, tmp_path):
    paper = preset(train_script, tmp_path, "market")
    assert changed(paper, printed(tmp_path, "--rehearse")) == REHEARSE
    # the paper's sizes stay: batch, instances, k1/k2, eps, K, BN slices, memory
    assert (paper["batch_size"], paper["k1"], paper["eps"], paper["num_instances"]) == (128, 25, 0.45, 8)
    assert paper["memorybank"] == "CMhybrid_v5" and paper["bn_slices"] == 4 and paper["mem_instances"] == 4
    duke = preset(train_script, tmp_path, "duke")
    assert changed(duke, preset(train_script, tmp_path, "duke", "rehearse", "rehearse_small")) == REHEARSE
    assert (duke["batch_size"], duke["k1"], duke["eps"]) == (256, 30, 0.6)


def test_full_model_keeps_resnet50_at_256x128_and_amp_maps(train_script, tmp_path):
    paper = preset(train_script, tmp_path, "market")
    assert (paper["arch"], paper["height"], paper["width"]) == ("resnet50", 256, 128)
    got = printed(tmp_path, "--rehearse", "--full-model", "--amp", "fp16", "--nproc", "1", "--torchrun")
    assert changed(paper, got) == dict(FULL, amp="fp16")


@pytest.mark.parametrize("flags, message", [(["--full-model"], "--full-model goes with --rehearse"),
                                            (["--rehearse", "--smoke"], "choose one"),
                                            (["--rehearse", "--amp", "fp8"], "invalid choice")])
def test_bad_combinations_are_refused(flags, message, tmp_path):
    p = adapter("market", "--logs-dir", str(tmp_path / "l"), *flags, "--print-config")
    assert p.returncode == 2 and message in p.stderr


@pytest.fixture(scope="module")
def market_root(tmp_path_factory):
    """The smoke benchmark's data (test_smoke.py): 483 training images."""
    root = tmp_path_factory.mktemp("synthetic") / "a"
    generate("market1501", root, seed=0, domain="a")
    return root


def check_rehearsal(p, logs, root, batch=128, iters=20):
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert f"-> {logs}" in p.stdout
    record = json.loads((logs / "results.json").read_text())
    assert record["config"]["epochs"] == 1 and record["config"]["iters"] == iters <= 20
    assert record["scale"] == "rehearsal" and len(record["history"]) == 1
    entry = record["history"][0]
    assert set(entry["seconds"]) == {"extract", "cluster", "train", "evaluate"}
    assert all(s >= 0 for s in entry["seconds"].values()) and entry["seconds"]["train"] > 0
    assert 0 < entry["images"]["train"] == iters * batch <= 20 * batch
    assert entry["images"]["extract"] == len(datasets.create("market1501", str(root)).train)
    assert entry["gpu_peak_mb"] is None
    return record


@pytest.mark.slow  # 5 iterations of a batch of 128
def test_rehearse_run_records_its_costs(market_root, tmp_path):
    """The real run, default data workers included (5 of its 20 iterations: the cap of 20 is
    pinned by the --print-config test)."""
    logs = tmp_path / "logs"
    p = adapter("market", "--rehearse", "--data-root", str(market_root), "--logs-dir", str(logs), "--",
                "--no-progress", "--iters", "5", timeout=1800)
    record = check_rehearsal(p, logs, market_root, iters=5)
    assert record["config"]["arch"] == "resnet18" and record["config"]["batch_size"] == 128


@pytest.mark.slow  # trains a network under torchrun
def test_torchrun_with_one_process_wraps_ddp(market_root, tmp_path):
    """--torchrun at --nproc 1: one gloo process, the student in DistributedDataParallel."""
    logs = tmp_path / "logs"
    p = adapter("market", "--rehearse", "--nproc", "1", "--torchrun", "--data-root", str(market_root),
                "--logs-dir", str(logs), "--", "--no-progress", "--iters", "4", timeout=1800)
    check_rehearsal(p, logs, market_root, iters=4)
    log = (logs / "log.txt").read_text()
    assert "DistributedDataParallel over 1 process(es), gloo" in log and "Traceback" not in log
