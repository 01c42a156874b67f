"""The rehearsal (ccc/reproduce.sh --rehearse [--full-model] [--amp] [--torchrun]): the paper
preset shortened to one epoch of at most 20 iterations from random initialisation, ResNet-18 at
64 x 32 unless --full-model, every size-dependent value kept; one real run on the smoke data and
its history entry's costs; the one-process torchrun path (gloo on the CPU)."""
import json
import os
import subprocess

import pytest
import yaml
from conftest import CCC_DIR

from ccc import datasets

ADAPTER = str(CCC_DIR / "reproduce.sh")
# what the rehearsal may change in the paper preset (configs/rehearse*.yml)
REHEARSAL = {"num_epochs", "iters", "pretrained", "arch", "height", "width", "pad", "warmup_with_dbscan",
             "scale"}


def adapter(*args, timeout=900, env=None):
    return subprocess.run([ADAPTER, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))


def resolved(*args):
    p = adapter(*args, "--print-config", timeout=300)
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


def test_print_config_pins_the_rehearsal(train_script, tmp_path, capsys):
    cfg = resolved("market", "--rehearse", "--data-root", tmp_path / "data", "--logs-dir",
                   tmp_path / "logs")
    assert (cfg["cluster"], cfg["num_epochs"], cfg["arch"], cfg["height"], cfg["width"],
            cfg["pretrained"]) == ("hdc", 1, "resnet18", 64, 32, "none")
    assert cfg["iters"] <= 20 and cfg["log_dir"] == str(tmp_path / "logs-hdc")
    assert train_script.main(["--config", str(CCC_DIR / "configs/hdc/market.yml"), "--root-dir",
                              str(tmp_path / "data"), "--log-dir", cfg["log_dir"], "--print-config"]) == 0
    paper = yaml.safe_load(capsys.readouterr().out)
    assert {k for k in paper if paper[k] != cfg[k]} <= REHEARSAL
    assert (paper["batch_size"], paper["num_instances"], paper["jaccard_k1"], paper["jaccard_k2"],
            paper["dbscan_eps"], paper["num_clusters"]) == (256, 16, 30, 6, 0.6, 750)
    assert not (tmp_path / "logs-hdc").exists() and not (tmp_path / "data").exists()

    full = resolved("veri", "--rehearse", "--full-model", "--cluster", "kmeans", "--amp", "fp16")
    assert (full["cluster"], full["arch"], full["height"], full["width"], full["pretrained"], full["amp"],
            full["num_epochs"], full["iters"], full["batch_size"], full["num_clusters"]) == \
        ("kmeans", "resnet50", 224, 224, "none", "fp16", 1, 20, 256, 1000)


def test_the_adapter_refuses_mixed_presets():
    for args, message in ((["--rehearse", "--smoke"], "--rehearse and --smoke exclude each other"),
                          (["--full-model"], "--full-model goes with --rehearse"),
                          (["--amp", "fp8"], "--amp must be off, bf16 or fp16")):
        p = adapter("market", *args, timeout=60)
        assert p.returncode == 2 and message in p.stderr


def train_images(root) -> int:
    return len(datasets.create("market1501", str(root), verbose=False).train)


def check_costs(run_dir, n_train, batch, iters):
    record = json.loads((run_dir / "results.json").read_text())
    assert record["epochs"] == 1 and len(record["history"]) == 1
    entry = record["history"][0]
    assert set(entry["seconds"]) >= {"extract", "cluster", "train", "evaluate"}
    assert all(entry["seconds"][k] >= 0 for k in ("extract", "cluster", "train", "evaluate"))
    assert entry["seconds"]["evaluate"] > 0   # the last epoch is evaluated
    assert 0 < entry["images"]["train"] <= iters * batch
    assert entry["images"]["extract"] == n_train
    assert entry["gpu_peak_mb"] is None
    return record


@pytest.mark.slow
def test_one_rehearsal_run(smoke_root, tmp_path):
    """The rehearsal (batch 256) on the synthetic Market of the smoke runs. 2 data workers, not the
    preset's 32: its 96-image training passes are shorter than one batch here, so every
    iteration would start 32 worker processes (minutes on 2 cores; at real size they live on);
    HDC's K is the small benchmark's 50 identities (the paper's 750 needs the real-size data);
    5 of the 20 iterations (the cap of 20 is pinned by the --print-config test)."""
    p = adapter("market", "--rehearse", "--data-root", smoke_root, "--logs-dir", tmp_path / "market", "--",
                "--no-progress", "--num-workers", "2", "--num-clusters", "50", "--iters", "5")
    assert p.returncode == 0, p.stderr[-3000:]
    run_dir = tmp_path / "market-hdc"
    assert f"-> {run_dir}" in p.stdout
    record = check_costs(run_dir, train_images(smoke_root), batch=256, iters=5)
    assert record["config"]["arch"] == "resnet18" and record["history"][0]["clustering"] == "HDC"
    assert record["scale"] == "rehearsal"


@pytest.mark.slow
def test_torchrun_with_one_process(smoke_root, tmp_path):
    """--torchrun --nproc 1: train.py under torchrun, DDP in a one-process gloo group on the CPU."""
    p = adapter("market", "--rehearse", "--torchrun", "--nproc", "1", "--data-root", smoke_root,
                "--logs-dir", tmp_path / "market", "--", "--no-progress", "--num-workers", "0",
                "--iters", "2", "--num-threads", "1", "--num-clusters", "50")
    run_dir = tmp_path / "market-hdc"
    assert p.returncode == 0, p.stderr[-3000:]
    assert "==> torchrun: 1 process(es) (cpu)" in (run_dir / "log.txt").read_text()
    check_costs(run_dir, train_images(smoke_root), batch=256, iters=2)
