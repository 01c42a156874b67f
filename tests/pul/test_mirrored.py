"""tf.distribute.MirroredStrategy (the multi-GPU path) on 2 logical CPU devices (--mirror-cpus 2),
in fresh processes: TensorFlow's logical devices must exist before it runs anything."""
import json
import math
import os
import subprocess
import sys

import pytest
from conftest import PUL_DIR

pytestmark = pytest.mark.slow  # trains networks


def tiny(data, logs, *extra):
    return ["--config", "configs/smoke.yaml", "--mode", "unsupervised", "--dataset", "market",
            "--data-root", str(data / "b"), "--source", "duke", "--source-root", str(data / "a"),
            "--logs-dir", str(logs), "--height", "32", "--width", "16", "--baseline-epochs", "2",
            "--epochs", "2", "--kmeans-n-init", "1", "--no-progress", "--seed", "5", "--eval-every", "0",
            *extra]


def train(args):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    p = subprocess.run([sys.executable, "examples/train.py", *args], cwd=PUL_DIR, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def test_mirrored_run_matches_single_device_and_resumes_on_one(tiny_data, tmp_path):
    """From the same baseline, the mirrored run (each batch split over 2 replicas, BatchNorm per
    replica, gradients all-reduced) evaluates the baseline and selects iteration 1's reliable
    set exactly as the single-device run (inference and k-means do not depend on the replicas);
    its fine-tuned model differs like another seed's. Its state then resumes on one device."""
    single, mirrored = tmp_path / "single", tmp_path / "mirrored"
    train(tiny(tiny_data, single, "--iterations", "2"))
    baseline = str(single / "baseline" / "0.keras")
    out = train(tiny(tiny_data, mirrored, "--iterations", "1", "--baseline", baseline, "--mirror-cpus", "2"))
    assert "MirroredStrategy: 2 replicas" in out
    s, m = (json.loads((d / "results.json").read_text()) for d in (single, mirrored))
    assert m["initial"]["mAP"] == pytest.approx(s["initial"]["mAP"], abs=1e-6)
    def selection(record):   # count, clusters, ARI (not the evaluation, the phase seconds, images)
        return {k: v for k, v in record.items() if k not in ("eval", "seconds", "images")}
    assert selection(m["history"][0]) == pytest.approx(selection(s["history"][0]), abs=1e-9)
    assert m["history"][0]["images"] == s["history"][0]["images"]   # the same batches and pool
    assert all(math.isfinite(v) for v in m["common"].values() if isinstance(v, float))

    # as if the mirrored run had been started for 2 iterations and stopped after the first (--resume
    # refuses a changed schedule; the device, --mirror-cpus, is run plumbing and may change)
    state = json.loads((mirrored / "state.json").read_text())
    state["config"]["iterations"] = 2
    (mirrored / "state.json").write_text(json.dumps(state))
    out = train(tiny(tiny_data, mirrored, "--iterations", "2", "--baseline", baseline, "--resume"))
    assert "MirroredStrategy" not in out and "resuming after iteration 1" in out
    r = json.loads((mirrored / "results.json").read_text())
    assert [h["iteration"] for h in r["history"]] == [1, 2] and r["history"][0] == m["history"][0]
    assert all(math.isfinite(v) for v in r["common"].values() if isinstance(v, float))


def test_mirror_cpus_after_tensorflow_started_is_refused():
    code = ("import tensorflow as tf; tf.constant(1.0) + 1\n"
            "from pul.model import distribution_strategy\n"
            "from pul import PULError\n"
            "try:\n    distribution_strategy(2)\nexcept PULError as e:\n    print('refused:', e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert "refused: --mirror-cpus 2" in p.stdout and "fresh process" in p.stdout, p.stdout + p.stderr
