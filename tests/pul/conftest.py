"""Shared fixtures of the PUL tests: synthetic datasets in the real layouts (session scope)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PUL_DIR = Path(__file__).resolve().parents[2] / "pul"
EXAMPLES = PUL_DIR / "examples"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Small synthetic source (duke layout, domain a) and target (market layout, domain b)."""
    from common_eval.synthetic import generate
    root = tmp_path_factory.mktemp("tiny")
    generate("dukemtmcreid", root / "a", seed=3, domain="a", ids=6, test_ids=5)
    generate("market1501", root / "b", seed=3, domain="b", ids=6, test_ids=5)
    return root


@pytest.fixture(scope="session")
def cuhk_data(tmp_path_factory):
    from common_eval.synthetic import generate
    root = tmp_path_factory.mktemp("cuhk")
    generate("cuhk03", root, seed=1, domain="a", ids=12, test_ids=8)
    return root


def import_train_script():
    """examples/train.py as a module (its main() runs a whole training in this process)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    import train  # noqa: PLC0415
    return train


def pytest_configure(config):
    # Keras 3.15's own convert_to_numpy on TF variables under NumPy 2 (not ours; thousands per run)
    config.addinivalue_line(
        "filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
