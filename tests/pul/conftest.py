"""Shared fixtures of the PUL tests: synthetic datasets in the real layouts (session scope)."""
from __future__ import annotations

import contextlib
import os
import subprocess
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


@contextlib.contextmanager
def readonly_mount(src: Path, dst: Path):
    """src seen read-only at dst (a bind mount remounted ro: root ignores chmod, not a ro mount).
    Skips the test when mounting is not permitted."""
    dst.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "--bind", str(src), str(dst)], capture_output=True).returncode != 0:
        pytest.skip("mount --bind is not permitted here (needs root): no read-only data root to test with")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(dst)], capture_output=True).returncode != 0:
            pytest.skip("remounting read-only is not permitted here")
        yield dst
    finally:
        subprocess.run(["umount", "-l", str(dst)], capture_output=True)


def tree_snapshot(root: Path) -> dict:
    """Every path under root with its size and modification time (to show nothing was written)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


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


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """One tiny trained PUL run (baseline of 1 epoch, 1 iteration of 1 epoch at 32 x 16), made once
    per session in this process: the checkpoints, event files and results the tests of a trained
    model read."""
    import json

    train = import_train_script()
    logs = tmp_path_factory.mktemp("tiny_run") / "logs"
    argv = ["--config", str(PUL_DIR / "configs" / "smoke.yaml"), "--dataset", "market",
            "--data-root", str(tiny_data / "b"), "--source", "duke", "--source-root", str(tiny_data / "a"),
            "--logs-dir", str(logs), "--height", "32", "--width", "16", "--baseline-epochs", "1",
            "--iterations", "1", "--epochs", "1", "--kmeans-n-init", "1", "--no-progress"]
    assert train.main(argv) == 0
    return {"logs": logs, "checkpoint": logs / "checkpoints" / "1.keras", "data": tiny_data,
            "results": json.loads((logs / "results.json").read_text())}
