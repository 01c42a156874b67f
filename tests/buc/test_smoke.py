"""The smoke runs (synthetic Market and DukeMTMC-VideoReID, ResNet-18 from random init, 2 CPU
threads): the target mAP must rise clearly above the starting model's. The margins are below the
gains measured at seed 0 (Market +20.7, DukeV +27.7 on an AMX Xeon; +16.7, +20.8 on an AVX-512 one:
CPU kernels change the trajectory; buc/README.md, "Smoke scale"). The video gain varies with the
training seed: +3.8 to +27.7 at seeds 0-4 on the AMX machine; on the other one seed 4, whose
random initial model scores 36.3, ended 2.7 points below it, which the README states."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import BUC

# measured gains (step-wise mAP, best step - initial): see the README
MARGIN = {"market1501": 8.0, "DukeMTMC-VideoReID": 10.0}


def smoke(dataset, root, logs):
    cmd = [sys.executable, str(BUC / "examples" / "train.py"), "--smoke", "-d", dataset, "--data_dir",
           str(root), "--logs_dir", str(logs), "--no-progress", "--seed", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=BUC)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((logs / "results.json").read_text())


def check_run(res, logs, target, dataset):
    assert (res["method"], res["target"], res["scale"], res["source"]) == ("buc", target, "smoke", None)
    assert res["native"]["ap"] == "sklearn018" and res["common"]["ap"] == "stepwise"
    assert res["initial"]["ap"] == "stepwise" and res["selection"] == "best-on-test"
    gain = res["common"]["mAP"] - res["initial"]["mAP"]
    print(f"{dataset}: initial {res['initial']['mAP']:.1f} -> best {res['common']['mAP']:.1f} "
          f"(step {res['selected_step']}), last {res['last']['mAP']:.1f}; {res['wall_seconds']} s")
    assert gain >= MARGIN[dataset], f"gain {gain:.1f} < {MARGIN[dataset]}"
    assert res["last"]["mAP"] - res["initial"]["mAP"] >= MARGIN[dataset] / 2
    hist = res["history"]
    clusters = [h["clusters"] for h in hist]
    m = clusters[0] - clusters[1]
    assert clusters == [clusters[0] - s * m for s in range(len(hist))]       # exactly m merges per step
    for name in ("log.txt", "args.json", "checkpoint.pth.tar", "model_best.pth.tar"):
        assert (logs / name).is_file(), name
    assert list(logs.glob("events.out.tfevents.*"))
    assert "tensorflow" not in (logs / "log.txt").read_text().lower()


@pytest.mark.slow
def test_smoke_market(market_root, tmp_path):
    logs = tmp_path / "market"
    res = smoke("market1501", market_root, logs)
    check_run(res, logs, "market", "market1501")
    # examples/test.py evaluates the saved best model to the same numbers
    out = subprocess.run([sys.executable, str(BUC / "examples" / "test.py"), "--checkpoint",
                          str(logs / "model_best.pth.tar"), "--output", str(tmp_path / "t.json"),
                          "--no-progress", "--threads", "2"], capture_output=True, text=True, cwd=BUC)
    assert out.returncode == 0, out.stderr[-2000:]
    t = json.loads((tmp_path / "t.json").read_text())
    assert t["native"]["mAP"] == pytest.approx(res["native"]["mAP"], abs=1e-6)


@pytest.mark.slow
def test_smoke_dukevideo(dukevideo_root, tmp_path):
    logs = tmp_path / "dukevideo"
    res = smoke("DukeMTMC-VideoReID", dukevideo_root, logs)
    check_run(res, logs, "dukevideo", "DukeMTMC-VideoReID")
