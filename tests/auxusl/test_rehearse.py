"""The adapter's rehearsal (``--rehearse``: the paper config at one epoch of at most 20 iterations,
ResNet-18 at 64x32 from random initialisation; ``--full-model`` keeps ResNet-50 at 256x128) and
the per-epoch phase seconds, frame counts and peak GPU memory of results.json's history."""

import json
import os
import subprocess

import pytest
import yaml
from conftest import AUXUSL_DIR, CONFIGS

from auxusl.config import all_keys, setup_cfg
from auxusl.datasets import create

PAPER = {"mars": "USL_MTCluster.yml", "dukevideo": "USL_MTCluster_Duke.yml"}
# what the adapter sets besides the rehearsal's overrides (run plumbing)
PLUMBING = {"DATASETS.DIR", "OUTPUT_DIR", "PICKLE_PATH"}
SMALL = {"MODEL.ARCH": "resnet18bnn", "INPUT.SIZE_TRAIN": [64, 32], "INPUT.SIZE_TEST": [64, 32]}
ALWAYS = {"MODEL.BACKBONE.PRETRAIN": False, "OPTIM.EPOCHS": 1, "DATALOADER.MAX_ITERS": 20,
          "SCALE": "rehearsal"}


def adapter(*args, timeout=60):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(AUXUSL_DIR / "reproduce.sh"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def value(cfg, dotted):
    for part in dotted.split("."):
        cfg = cfg[part]
    return list(cfg) if isinstance(cfg, (list, tuple)) else cfg


def resolved(*args) -> dict:
    p = adapter(*args, "--data-root", "/nowhere", "--print-config")
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


@pytest.mark.parametrize("target", ["mars", "dukevideo"])
@pytest.mark.parametrize("full", [False, True])
def test_rehearse_is_the_paper_config_with_only_the_rehearsal_overrides(target, full):
    flags = ["--rehearse"] + (["--full-model", "--amp", "fp16", "--torchrun"] if full else [])
    got = resolved(target, *flags)
    paper = setup_cfg(str(CONFIGS / PAPER[target]))
    want = dict(ALWAYS, **({"MODEL.AMP": "fp16"} if full else SMALL))
    for key, v in want.items():
        assert value(got, key) == v, key
    changed = {k for k in all_keys(paper) if value(got, k) != value(paper, k)}
    assert changed == set(want) | (PLUMBING - ({"PICKLE_PATH"} if target == "mars" else set()))
    # so the paper's sizes stay (batch, instances, clips, k1/k2, eps, DTI, K, aux terms), e.g.
    assert value(got, "DATALOADER.TRAIN_BATCH_SIZE") == 64 and value(got, "CLUSTER.K1") == 30
    assert value(got, "CLUSTER.ADAPTIVE_RHO") == pytest.approx(1.6e-3)
    assert value(got, "MODEL.LOSSES.ID_K") == 60
    assert value(got, "MODEL.DEVICE") == "cuda"  # the CPU when none
    if full:
        assert (value(got, "MODEL.ARCH"), value(got, "INPUT.SIZE_TRAIN")) == ("resnet50bnn", [256, 128])
    assert value(got, "CLUSTER.CCE_OPTION") is (target == "dukevideo")  # dukevideo: aux on, one run


@pytest.mark.parametrize(
    "args, message",
    [
        (["mars", "--full-model"], "--full-model goes with --rehearse"),
        (["mars", "--rehearse", "--smoke"], "--rehearse runs the paper config"),
        (["mars", "--amp", "fp8"], "--amp must be off, bf16 or fp16"),
    ],
)
def test_rehearsal_arguments(args, message):
    p = adapter(*args)
    assert p.returncode == 2 and message in p.stderr and p.stderr.count("\n") == 1


def training_frames(rec) -> int:
    d = rec["config"]["DATASETS"]
    root = f"{d['DIR']}/{d['NAME']}"
    data = create(d["TARGET"], root, info_dir=d["MARS_INFO"], mode=d["MODE"], dense_step=d["DENSE_STEP"],
                  verbose=False)
    return sum(len(paths) for paths, _, _ in data.train)


def check_history(rec, max_iters=20):
    (h,) = rec["history"]
    dl = rec["config"]["DATALOADER"]
    assert set(h["seconds"]) == {"extract", "cluster", "train", "evaluate"}
    assert all(s >= 0 for s in h["seconds"].values()) and h["seconds"]["evaluate"] > 0
    assert 0 < h["iters"] <= max_iters
    assert h["images"]["train"] == h["iters"] * dl["TRAIN_BATCH_SIZE"] * dl["TRAIN_SEQ_LEN"]  # frames
    # paper clips (32 frames) cover the synthetic tracklets (6-16 frames): every frame extracted once
    assert h["images"]["extract"] == training_frames(rec)
    assert h["gpu_peak_mb"] is None
    assert {"extract_s", "cluster_s", "train_s", "eval_s"} <= set(h)  # the keys kept
    return h


@pytest.mark.slow
def test_rehearsal_run(small_root, tmp_path):
    logs = tmp_path / "mars"
    p = adapter("mars", "--rehearse", "--data-root", str(small_root), "--logs-dir", str(logs),
                "--", "PROGRESS", "False", "NUM_THREADS", "1", timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"-> {logs}" in p.stdout
    rec = json.loads((logs / "results.json").read_text())
    assert rec["scale"] == "rehearsal"
    assert (rec["epochs"], rec["variant"], rec["config"]["MODEL"]["ARCH"]) == (1, "ours-", "resnet18bnn")
    check_history(rec)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logs))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {f"time/{phase}" for phase in ("extract", "cluster", "train", "evaluate")} <= tags


@pytest.mark.slow
def test_rehearsal_under_torchrun_with_one_process(small_root, tmp_path):
    """--torchrun at --nproc 1 (the GPU check's path): a gloo group of one, DDP; dukevideo with its
    auxiliary information; DTI asks for 10 x #clusters iterations, MAX_ITERS caps them at 2."""
    logs = tmp_path / "duke"
    p = adapter("dukevideo", "--rehearse", "--torchrun", "--nproc", "1", "--data-root", str(small_root),
                "--logs-dir", str(logs), "--", "PROGRESS", "False", "NUM_THREADS", "1",
                "DATALOADER.ITERS_CLUSTER_MULTIPLIER", "10.0", "DATALOADER.MAX_ITERS", "2", timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "duke-aux"
    assert "torchrun process group (gloo), rank 0 of 1" in (run / "log.txt").read_text()
    rec = json.loads((run / "results.json").read_text())
    assert rec["variant"] == "ours"
    h = check_history(rec, max_iters=2)
    assert h["iters"] == 2 and h["clusters"] * 10 > 2
