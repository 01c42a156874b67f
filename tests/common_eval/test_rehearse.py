"""python -m common_eval.rehearse: runs a command, then sums the phases of the results.json it wrote
(history entries' seconds / images / gpu_peak_mb), images/s, peak RSS and the projection."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from common_eval.rehearse import find_results, summarise

# a stand-in training run: allocates ~200 MB, then writes a results.json with two history entries
WRITER = textwrap.dedent("""
    import json, pathlib, sys
    block = bytearray(200 * 2**20)          # resident: touched page by page
    for i in range(0, len(block), 4096):
        block[i] = 1
    out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    hist = [{"epoch": 0,
             "seconds": {"extract": 2.0, "cluster": 3.0, "train": 4.0, "evaluate": 1.0, "merge": 9},
             "images": {"train": 320, "extract": 1000}, "gpu_peak_mb": None},
            {"epoch": 1, "seconds": {"extract": 2.0, "cluster": 5.0, "train": 4.0, "evaluate": 0.0},
             "images": {"train": 320, "extract": 1000}, "gpu_peak_mb": 812.5}]
    (out / "results.json").write_text(json.dumps({"method": "x", "history": hist}))
""")


def _run(*args):
    return subprocess.run([sys.executable, "-m", "common_eval.rehearse", *map(str, args)],
                          capture_output=True, text=True)


def test_sums_phases_rates_and_projection(tmp_path):
    logs = tmp_path / "run"
    r = _run("--logs", logs, "--label", "x market", "--clusterings", 50, "--",
             sys.executable, "-c", WRITER, logs)
    assert r.returncode == 0, r.stderr
    rec = json.loads((logs / "rehearsal.json").read_text())
    assert rec["seconds"] == {"extract": 4.0, "cluster": 8.0, "train": 8.0, "evaluate": 1.0}
    assert rec["images"] == {"train": 640, "extract": 2000}
    assert rec["images_per_s"] == {"train": 80.0, "extract": 500.0}
    assert rec["gpu_peak_mb"] == 812.5
    assert rec["projected"] == {"clusterings": 50, "cluster_s": 200.0}   # 50 x (8 s / 2 entries)
    assert 0.19 < rec["peak_rss_gb"] < 1.5           # the child's 200 MB, not this test's process
    assert "x market" in r.stdout and "3.3 min" in r.stdout


def test_suffixed_folders_are_found(tmp_path):
    # 3C and AuxUSL write LOGDIR-<suffix>; a folder that only starts alike is not theirs
    for name in ("run-hdc", "run-aux", "runx"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text("{}")
    assert [p.parent.name for p in find_results(tmp_path / "run")] == ["run-aux", "run-hdc"]


def test_failures_pass_through(tmp_path):
    r = _run("--logs", tmp_path / "a", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert r.returncode == 3 and "failed (exit 3)" in r.stderr
    r = _run("--logs", tmp_path / "k", "--", sys.executable, "-c", "import os; os.kill(os.getpid(), 15)")
    assert r.returncode == 143 and "was killed by signal 15" in r.stderr
    r = _run("--logs", tmp_path / "b", "--", sys.executable, "-c", "pass")
    assert r.returncode == 2 and "wrote no results.json" in r.stderr
    r = _run("--logs", tmp_path / "c")
    assert r.returncode == 2 and "give the command" in r.stderr


def test_summarise_without_history():
    assert summarise({"history": []})["entries"] == 0
    with pytest.raises(ValueError):
        summarise({"history": [{"seconds": {"train": "x"}}]})
