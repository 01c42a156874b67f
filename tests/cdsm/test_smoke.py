"""The smoke preset end to end, through the adapter: ``cdsm/reproduce.sh market --smoke``.

Same data as ``./reproduce.sh cdsm market --smoke`` (data/synthetic/a = generate(market1501,
seed 0, domain a, default size)); fixed seed. Measured gains over the initial model are in
cdsm/README.md ("Smoke scale"); the margin asserted here leaves room below the lowest of them.
"""
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import CDSM_DIR

from common_eval.synthetic import generate

MARGIN = 10.0  # mAP points above the initial (random-init) model


@pytest.mark.slow
def test_smoke_run_learns(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "a"
    generate("market1501", root, seed=0, domain="a")
    logs = tmp_path_factory.mktemp("smoke_logs")
    env = dict(os.environ, CDSM_PYTHON=sys.executable)
    t0 = time.time()
    p = subprocess.run([str(CDSM_DIR / "reproduce.sh"), "market", "--smoke", "--data-root", str(root),
                        "--logs-dir", str(logs), "--", "--no-progress"],
                       capture_output=True, text=True, timeout=3600, env=env)
    seconds = time.time() - t0
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    record = json.loads((logs / "results.json").read_text())
    gain = record["common"]["mAP"] - record["initial"]["mAP"]
    print(f"\nsmoke: initial mAP {record['initial']['mAP']:.1f} -> best {record['common']['mAP']:.1f} "
          f"(epoch {record['best_epoch']}), last {record['last']['mAP']:.1f}; "
          f"run {record['wall_seconds']:.0f} s, process {seconds:.0f} s, load {os.getloadavg()[0]:.1f}")
    assert record["scale"] == "smoke" and record["epochs"] == 8 and len(record["history"]) == 8
    assert record["config"]["arch"] == "resnet18" and record["config"]["memorybank"] == "CMhybrid_v5"
    assert gain >= MARGIN
    assert record["last"]["mAP"] - record["initial"]["mAP"] >= MARGIN
    assert all(h["clusters"] > 0 and h["reliable"] is not None for h in record["history"])
    assert (logs / "model_best.pth.tar").exists() and (logs / "checkpoint.pth.tar").exists()
