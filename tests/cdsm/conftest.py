"""Shared fixtures of the CDSM tests: synthetic datasets (common_eval.synthetic) and the scripts."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from common_eval.synthetic import generate

CDSM_DIR = Path(__file__).resolve().parents[2] / "cdsm"
EXAMPLES = CDSM_DIR / "examples"
if str(EXAMPLES) not in sys.path:  # train.py imports options.py beside it, as `python examples/train.py`
    sys.path.insert(0, str(EXAMPLES))

torch.set_num_threads(2)


def load_script(name: str):
    """examples/<name>.py as a module (the scripts are not part of the package)."""
    path = EXAMPLES / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"cdsm_examples_{name}", path)
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


def tiny_args(data_dir, logs_dir, *extra) -> list[str]:
    """A CDSM run that takes seconds: ResNet-18 at 32 x 16, 2 iterations per epoch."""
    return ["-d", "market1501", "-a", "resnet18", "--pretrained", "none", "--height", "32",
            "--width", "16", "--pad", "1", "-b", "16", "--num-instances", "4", "--mem-instances", "2",
            "--k1", "6", "--k2", "2",
            "--eps", "0.5", "--min-samples", "2", "--memorybank", "CMhybrid_v5", "--momentum", "0.05",
            "--epochs", "2", "--iters", "2", "-j", "0", "--num-threads", "2", "--no-progress",
            "--print-freq", "0", "--scale", "smoke", "--seed", "7",
            "--data-dir", str(data_dir), "--logs-dir", str(logs_dir), *extra]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_root, train_script) -> Path:
    """One tiny trained run (tiny_args, 1 epoch), made once per session: its folder holds
    model_best.pth.tar, checkpoint.pth.tar, results.json and the TensorBoard events."""
    logs = tmp_path_factory.mktemp("tiny_run") / "logs"
    assert train_script.main(tiny_args(tiny_root, logs, "--epochs", "1")) == 0
    return logs
