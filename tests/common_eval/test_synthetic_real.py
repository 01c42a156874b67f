"""Synthetic datasets with the real datasets' counts (counts="real", used by ./reproduce.sh
rehearse), counted from the plan without drawing (plan_stats), and the parallel drawing of large
datasets (the same bytes as one process)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import common_eval.synthetic as synthetic
import common_eval.synthetic.plan as plan
from common_eval.synthetic import REAL_COUNTS, generate, is_current, plan_stats, read_manifest

# the default benchmark, as the generator wrote it before counts="real" existed (domain a, seed 0):
# its plan (and so its bytes and the smoke numbers of the README) must not move
BENCHMARK_A = {
    "market1501": {"gallery": {"cams": 6, "ids": 61, "images": 400, "junk": 44},
                   "query": {"cams": 6, "ids": 60, "images": 182},
                   "train": {"cams": 6, "ids": 50, "images": 483}},
    "mars": {"gallery": {"cams": 6, "frames": 2411, "ids": 61, "junk": 19, "tracklets": 222},
             "query": {"cams": 6, "frames": 1234, "ids": 60, "tracklets": 111},
             "train": {"cams": 6, "frames": 2583, "ids": 50, "tracklets": 232}},
}


def _count(split: dict) -> int:
    return split.get("images", split.get("tracklets"))


@pytest.mark.parametrize("layout", sorted(BENCHMARK_A))
def test_benchmark_plan_unchanged(layout):
    assert plan_stats(layout) == BENCHMARK_A[layout]


def _check_real(layout):
    stats, real = plan_stats(layout, counts="real"), REAL_COUNTS[layout]
    train = _count(stats["train"]) + (_count(stats["val"]) if "val" in stats else 0)
    assert stats["train"]["ids"] == real["ids"]
    assert stats["query"]["ids"] == real["test_ids"]
    got_counts = {"train": train, "query": _count(stats["query"]), "gallery": _count(stats["gallery"])}
    for name, got in got_counts.items():
        assert abs(got / real[name] - 1) <= 0.15, (layout, name, got, real[name])
    if layout != "cuhk03":
        assert stats["train"]["cams"] == real["cams"]


@pytest.mark.parametrize("layout", ["market1501", "dukemtmcreid", "dukevideo"])
def test_real_counts(layout):
    _check_real(layout)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["msmt17", "veri776", "mars", "cuhk03"])
def test_real_counts_large(layout):
    _check_real(layout)


def test_real_counts_refuse_sizes(tmp_path):
    with pytest.raises(ValueError, match="counts='real' sets the identities"):
        generate("market1501", tmp_path, ids=5, counts="real")
    with pytest.raises(ValueError, match="unknown counts 'huge'"):
        plan_stats("market1501", counts="huge")


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_parallel_drawing_writes_the_same_bytes(tmp_path, monkeypatch):
    serial = generate("dukevideo", tmp_path / "serial", ids=4, test_ids=3)
    monkeypatch.setattr(plan, "PARALLEL_FRAMES", 1)     # every dataset is "large": a process pool
    monkeypatch.setattr(plan.os, "cpu_count", lambda: 2)
    parallel = generate("dukevideo", tmp_path / "parallel", ids=4, test_ids=3)
    assert _digest(serial) == _digest(parallel)
    assert sum(1 for _ in serial.rglob("*.jpg")) > 50


def test_reuse_keeps_a_current_dataset(tmp_path):
    root = tmp_path / "r"
    generate("market1501", root, ids=3, test_ids=2)
    assert not is_current(root, "market1501")            # other sizes than the default
    assert not is_current(root, "market1501", counts="real")
    cmd = [sys.executable, "-m", "common_eval.synthetic", "--layout", "market1501", "--root", str(root)]
    before = (root / "Market-1501-v15.09.15.synthetic.json").read_bytes()
    # not current -> without --overwrite the generator refuses to replace it
    r = subprocess.run(cmd + ["--reuse"], capture_output=True, text=True)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert (root / "Market-1501-v15.09.15.synthetic.json").read_bytes() == before
    r = subprocess.run(cmd + ["--reuse", "--overwrite"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert is_current(root, "market1501")
    stamp = (root / "Market-1501-v15.09.15").stat().st_mtime_ns
    r = subprocess.run(cmd + ["--reuse"], capture_output=True, text=True)   # current: kept as it is
    assert r.returncode == 0, r.stderr
    assert (root / "Market-1501-v15.09.15").stat().st_mtime_ns == stamp
    manifest = json.loads((root / "Market-1501-v15.09.15.synthetic.json").read_text())
    assert manifest["ids"] == synthetic.DEFAULT_IDS
    assert read_manifest(root, "market1501").get("counts", "benchmark") == "benchmark"


def test_pids_stay_within_the_real_range():
    # real-size Market draws 1,501 identities: all of 0001..1501, none beyond (loaders check it)
    rng = np.random.default_rng(0)
    assert sorted(plan.sample_pids(rng, 1501, 1501)) == list(range(1, 1502))
    assert max(plan.sample_pids(rng, 775, 776)) <= 776        # VeRi
    assert len(set(plan.sample_pids(rng, 2000, 1500))) == 2000  # more than the real range: extended


def test_a_zero_fraction_is_a_value_not_the_writers_default():
    from common_eval.synthetic.plan import Shape
    assert Shape(distractors=0.0, junk=0.0).value("distractors", 0.5) == 0.0
    assert Shape(junk=0.0).value("junk", 0.12) == 0.0
    assert Shape().value("distractors", 0.5) == 0.5 and Shape(max_query=3).value("max_query", 2) == 3
