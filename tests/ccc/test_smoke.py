"""The smoke preset of each variant, through the adapter (./reproduce.sh ccc market --smoke
--cluster X): synthetic Market (domain a, 50 train / 60 test identities), ResNet-18 from random
initialisation. Each must raise the mAP clearly above the starting model's; the wall time is
recorded in results.json (and the README), not asserted. The best and last that results.json
reports are checked against the run's per-epoch history and its model_best checkpoint."""
import json
import subprocess

import pytest
from conftest import CCC_DIR, check_best_and_last

MARGIN = {"hdc": 8.0, "dbscan": 8.0, "kmeans": 8.0}   # mAP points over the initial model, seed 999


@pytest.mark.slow
@pytest.mark.parametrize("cluster", ["hdc", "dbscan", "kmeans"])
def test_smoke_run_improves_on_the_initial_model(smoke_root, tmp_path, cluster):
    logs = tmp_path / "market-smoke"
    p = subprocess.run([str(CCC_DIR / "reproduce.sh"), "market", "--smoke", "--cluster", cluster,
                        "--data-root",
                        str(smoke_root), "--logs-dir", str(logs), "--", "--no-progress"],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    record = json.loads((tmp_path / f"market-smoke-{cluster}" / "results.json").read_text())
    assert (record["method"], record["variant"], record["scale"]) == ("ccc", cluster, "smoke")
    initial, best, last = record["initial"]["mAP"], record["common"]["mAP"], record["last"]["mAP"]
    print(f"{cluster}: initial {initial:.1f} -> best {best:.1f}, last {last:.1f} mAP in "
          f"{record['wall_seconds']:.0f} s")
    assert last >= initial + MARGIN[cluster]
    check_best_and_last(tmp_path / f"market-smoke-{cluster}", record)
    clusterings = [h["clustering"] for h in record["history"]]
    expected = {"hdc": "HDC", "dbscan": "DBSCAN", "kmeans": "k-means"}[cluster]
    assert clusterings[0] == ("DBSCAN" if cluster == "dbscan" else "DBSCAN warm-up")
    assert set(clusterings[1:]) == {expected}


def test_adapter_rejects_bad_arguments(tmp_path):
    for args, message in ((["duke"], "3C reports market, msmt17 and veri, not 'duke'"),
                          (["market", "--cluster", "optics"], "--cluster must be hdc, dbscan or kmeans"),
                          (["market", "--bogus"], "unknown option '--bogus'")):
        p = subprocess.run([str(CCC_DIR / "reproduce.sh"), *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and message in p.stderr
