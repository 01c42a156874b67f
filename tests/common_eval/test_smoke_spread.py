"""The demo's expected spread (common_eval.smoke): one entry per demo task, the table's column and
the line that places a newcomer's smoke run in it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from common_eval.results import load_results, write_results
from common_eval.smoke import SMOKE_SPREAD, smoke_spread, verdict
from common_eval.table import HEADER, render
from common_eval.table import main as table_main

ROOT = Path(__file__).resolve().parents[2]

# what ./reproduce.sh's demo runs (its DEMO table), as results.json keys
DEMO_TASKS = {("pul", None, "duke", "market"), ("buc", None, None, "market"), ("cdsm", None, None, "market"),
              ("ccc", "hdc", None, "market"), ("auxusl", "ours", None, "dukevideo"),
              ("auxusl", "ours-", None, "dukevideo")}


def metrics(m):
    return {"ap": "stepwise", "mAP": m, "rank1": m, "rank5": m, "rank10": m, "mINP": m}


def record(folder, key, m, scale="smoke"):
    method, variant, source, target = key
    write_results(folder, method=method, variant=variant, source=source, target=target, scale=scale,
                  common=metrics(m), native=metrics(m), initial=metrics(1.0),
                  epochs=2, wall_seconds=10, command="x", config={})


def test_every_demo_task_has_three_seeds():
    demo = re.search(r"declare -A DEMO=\((.*?)\)", (ROOT / "reproduce.sh").read_text(), re.S).group(1)
    assert set(re.findall(r"\[(\w+)\]", demo)) == {k[0] for k in DEMO_TASKS}
    assert set(SMOKE_SPREAD) == DEMO_TASKS
    for key, entry in SMOKE_SPREAD.items():
        assert len(entry["seeds"]) == len(set(entry["seeds"])) == len(entry["mAP"]) == 3, key
        assert all(0 < v < 100 for v in entry["mAP"]), key


@pytest.mark.parametrize("key", sorted(DEMO_TASKS, key=str))
def test_verdict_within_near_far(key):
    s = smoke_spread(*key)
    assert s["lo"] <= s["mean"] <= s["hi"] and s["lo"] == min(s["mAP"]) and s["hi"] == max(s["mAP"])
    slack = max(3.0, (s["hi"] - s["lo"]) / 2)
    rec = {"method": key[0], "variant": key[1], "source": key[2], "target": key[3], "scale": "smoke"}
    assert "within the expected spread" in verdict({**rec, "common": {"mAP": s["mean"]}})
    assert "near the expected spread" in verdict({**rec, "common": {"mAP": s["hi"] + slack - 0.1}})
    assert "far outside" in verdict({**rec, "common": {"mAP": s["lo"] - slack - 0.1}})
    assert verdict({**rec, "scale": "paper", "common": {"mAP": s["mean"]}}) is None
    assert smoke_spread(key[0], "other", key[2], key[3]) is None


def test_table_column_and_lines(tmp_path, capsys):
    key = ("cdsm", None, None, "market")
    s = smoke_spread(*key)
    record(tmp_path / "a", key, s["mean"])
    record(tmp_path / "b", ("cdsm", None, None, "duke"), 50.0)    # no spread measured for this task
    text = render(load_results(tmp_path))
    assert HEADER[-1] == "smoke mAP, 3 seeds"
    row = next(line for line in text.splitlines() if "| market | smoke |" in line)
    assert row.endswith(f"| {s['mean']:.1f} ({s['lo']:.1f}–{s['hi']:.1f}) |")
    assert next(line for line in text.splitlines() if "| duke | smoke |" in line).endswith("|  |")
    assert all(line.count("|") == len(HEADER) + 1 for line in text.splitlines())
    assert table_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"cdsm market: mAP {s['mean']:.1f}, within the expected spread" in out
    assert "cdsm duke:" not in out
