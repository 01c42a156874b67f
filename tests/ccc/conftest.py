"""Shared fixtures of the 3C tests: synthetic datasets (common_eval.synthetic) and the scripts."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from common_eval.synthetic import generate

CCC_DIR = Path(__file__).resolve().parents[2] / "ccc"

torch.set_num_threads(2)


def load_script(name: str):
    """examples/<name>.py as a module (the scripts are not part of the package)."""
    path = CCC_DIR / "examples" / f"{name}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"ccc_examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def train_script():
    return load_script("train")


@pytest.fixture(scope="session")
def test_script():
    return load_script("test")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A small synthetic Market-1501 (12 train ids, 8 test ids) for unit-level runs."""
    root = tmp_path_factory.mktemp("tiny")
    generate("market1501", root, seed=3, domain="a", ids=12, test_ids=8)
    return root


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    """The synthetic Market-1501 of the smoke runs (domain a: 50 train ids, 483 images; 60 test ids)."""
    root = tmp_path_factory.mktemp("synthetic") / "a"
    generate("market1501", root, seed=0, domain="a")   # = data/synthetic/a of ./reproduce.sh
    return root


def tiny_args(root, log_dir, *extra, cluster: str = "hdc") -> list[str]:
    """A 3C run that takes seconds: ResNet-18 at 32 x 16, 2 iterations per epoch, epoch 0 a DBSCAN
    warm-up and epoch 1 the chosen clustering."""
    return ["--cluster", cluster, "--dataset", "market1501", "--arch", "resnet18", "--pretrained", "none",
            "--height", "32", "--width", "16", "--pad", "1", "--batch-size", "16", "--num-instances", "4",
            "--jaccard-k1", "6", "--jaccard-k2", "2", "--dbscan-eps", "0.5", "--cluster-min-instances", "2",
            "--num-clusters", "12", "--warmup-iters", "1", "--warmup-with-dbscan", "--hdc-outlier",
            "--hdc-centroids", "--cm-mode", "hd_camera", "--loss-with-camera", "--num-epochs", "2",
            "--iters", "2", "--eval-step-epoch", "1", "--num-workers", "0", "--num-threads", "2",
            "--no-progress", "--print-freq", "0", "--scale", "smoke", "--seed", "7",
            "--root-dir", str(root), "--log-dir", str(log_dir), *extra]


@pytest.fixture(scope="session")
def tiny_run(train_script, tiny_root, tmp_path_factory) -> Path:
    """One finished tiny HDC run (epoch 0 a DBSCAN warm-up, epochs 1-2 HDC), shared by the tests
    of the outputs, test.py, TensorBoard and resume (the uninterrupted run)."""
    logs = tmp_path_factory.mktemp("tiny_run") / "full"
    assert train_script.main(tiny_args(tiny_root, logs, "--num-epochs", "3")) == 0
    return logs


def check_best_and_last(logs: Path, record: dict, ckpt_dir: Path | None = None) -> None:
    """results.json's best and last against the run's own records (each can fail if the
    bookkeeping is wrong): best = the maximum over the scheduled evaluations of the per-epoch
    history and equals the metrics of its recorded best epoch; last = the last history entry;
    model_best.pth.tar holds the metrics, epoch and weights' record that results.json reports."""
    history = record["history"]
    scheduled = [h for h in history if h.get("scheduled_eval")]
    assert scheduled, "no scheduled evaluation in the history"
    best, last = record["common"], record["last"]
    assert best["mAP"] == max(h["mAP"] for h in scheduled)
    entry = history[record["best_epoch"]]
    assert entry["epoch"] == record["best_epoch"] and entry["scheduled_eval"] is True
    assert (best["mAP"], best["rank1"]) == (entry["mAP"], entry["rank1"])
    assert (last["mAP"], last["rank1"]) == (history[-1]["mAP"], history[-1]["rank1"])
    assert history[-1]["epoch"] == record["epochs"] - 1
    snapshot = torch.load((ckpt_dir or logs) / "model_best.pth.tar", weights_only=True)
    assert snapshot["epoch"] == record["best_epoch"] + 1
    assert snapshot["metrics"] == best
