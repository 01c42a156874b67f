"""Shared fixtures for the BUC tests: synthetic datasets in the official layouts.

Small trees (4-6 identities) for unit tests; the default-size Market and DukeMTMC-VideoReID
trees only for the slow smoke runs.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see train.py)

import atexit  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from common_eval.synthetic import generate  # noqa: E402

torch.set_num_threads(2)

# converted copies go to ${XDG_CACHE_HOME}/buc/converted: a folder of this session, not ~/.cache
# (subprocesses inherit it)
_CACHE = tempfile.mkdtemp(prefix="buc-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

BUC = Path(__file__).resolve().parents[2] / "buc"
EXAMPLES = BUC / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Every BUC layout with few identities (seconds to generate)."""
    root = tmp_path_factory.mktemp("synthetic_tiny")
    generate("market1501", root, seed=3, domain="a", ids=6, test_ids=6)
    generate("dukemtmcreid", root, seed=3, domain="a", ids=4, test_ids=4)
    generate("mars", root, seed=3, domain="a", ids=4, test_ids=4)
    generate("dukevideo", root, seed=3, domain="a", ids=4, test_ids=4)
    return root


@pytest.fixture(scope="session")
def market_root(tmp_path_factory):
    """The smoke preset's synthetic Market (50 train ids, 60 test ids)."""
    root = tmp_path_factory.mktemp("synthetic_market")
    generate("market1501", root, seed=0, domain="a")
    return root


@pytest.fixture(scope="session")
def dukevideo_root(tmp_path_factory):
    """The smoke preset's synthetic DukeMTMC-VideoReID (50 train ids, 60 test ids)."""
    root = tmp_path_factory.mktemp("synthetic_dukevideo")
    generate("dukevideo", root, seed=0, domain="a")
    return root


def tiny_argv(root, logs, *extra) -> list[str]:
    """A seconds-long BUC run on the tiny synthetic Market: same code path, tiny sizes."""
    return ["-d", "market1501", "--data_dir", str(root), "--logs_dir", str(logs), "-a", "resnet18",
            "--pretrained", "none", "--height", "64", "--width", "32", "-b", "8", "-f", "64",
            "--workers", "0", "-mp", "0.2", "--initial_steps", "2", "--lr_step_size", "1",
            "--later_steps", "1", "--no-progress", "--print_freq", "1000", *extra]


def untimed(history: list) -> list:
    """A results history without what each process measures: the phase seconds (wall-clock times
    differ between any two runs), the images and the GPU peak (a step resumed from inside counts
    only the epochs after the resume)."""
    return [{k: v for k, v in entry.items() if k not in ("seconds", "images", "gpu_peak_mb")}
            for entry in history]


TINY_RUN = ("--steps", "2", "--initial_steps", "1")   # 2 steps of 1 epoch each: seconds


@pytest.fixture(scope="session")
def tiny_trained(tiny_root, tmp_path_factory):
    """One tiny trained run (its folder: checkpoint.pth.tar, model_best.pth.tar, results.json,
    TensorBoard events), made once per session for the tests that use a trained model."""
    from train import main

    logs = tmp_path_factory.mktemp("tiny_trained") / "run"
    assert main(tiny_argv(tiny_root, logs, *TINY_RUN)) == 0
    return logs
