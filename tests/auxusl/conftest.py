"""Shared fixtures of the AuxUSL tests: synthetic datasets, a hand-made DukeV tree, the scripts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from common_eval.synthetic import generate

AUXUSL_DIR = Path(__file__).resolve().parents[2] / "auxusl"
CONFIGS = AUXUSL_DIR / "configs"

torch.set_num_threads(2)


def load_script(name: str):
    """examples/<name>.py as a module (the scripts are not part of the package)."""
    examples = str(AUXUSL_DIR / "examples")
    if examples not in sys.path:
        sys.path.insert(0, examples)
    path = AUXUSL_DIR / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"auxusl_examples_{name}", path)
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
def small_root(tmp_path_factory) -> Path:
    """Small synthetic MARS and DukeMTMC-VideoReID (12 train ids, 8 test ids) for unit-level runs."""
    root = tmp_path_factory.mktemp("small")
    generate("mars", root, seed=3, domain="a", ids=12, test_ids=8)
    generate("dukevideo", root, seed=3, domain="a", ids=12, test_ids=8)
    return root


def write_frame(path: Path, shade: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 16), (shade, shade, shade)).save(path, quality=90)


# A hand-made DukeMTMC-VideoReID: (split, pid, tracklet, camera, first X, number of frames);
# frames every 12 X. Worked out by hand in test_auxinfo.py.
TINY_TREE = [
    ("train", 1, 1, 1, 1000, 5),  # cam 1, X 1000..1048 -> clock 6542..6590
    ("train", 1, 2, 2, 5000, 3),  # cam 2, X 5000..5024 -> clock 8606..8630
    ("train", 2, 1, 1, 1040, 4),  # cam 1, X 1040..1076 -> clock 6582..6618  (overlaps pid 1 / 1)
    ("train", 3, 1, 5, 6600, 2),  # cam 5, X 6600..6612 -> clock 6600..6612  (overlaps pid 2 / 1)
    ("query", 7, 1, 2, 5010, 2),  # cam 2, X 5010..5022 -> clock 8616..8628
    ("gallery", 7, 2, 1, 3100, 3),  # cam 1, X 3100..3124 -> clock 8642..8666
    ("gallery", 8, 1, 2, 5020, 4),  # cam 2, X 5020..5056 -> clock 8626..8662 (overlaps the query)
    ("gallery", 9, 1, 3, 100, 2),  # cam 3, X 100..112   -> clock 27343..27355
]


@pytest.fixture
def tiny_duke(tmp_path) -> Path:
    root = tmp_path / "DukeMTMC-VideoReID"
    for split, pid, tk, cam, x0, n in TINY_TREE:
        for i in range(n):
            write_frame(
                root
                / split
                / f"{pid:04d}"
                / f"{tk:04d}"
                / f"{pid:04d}_C{cam}_F{i + 1:04d}_X{x0 + 12 * i:05d}.jpg"
            )
    return root
