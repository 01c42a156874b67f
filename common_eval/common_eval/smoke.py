"""What the demo's smoke runs give over three seeds on one machine: the expected spread that tells
a newcomer's broken install from noise. mAP in the common flavour (step-wise AP, the selected
model of each run, as `./reproduce.sh table` prints it).

Keys as in paper.py: (method, variant, source, target). Measured with `./reproduce.sh METHOD
DATASET --smoke --seed N` at each method's default seed and the two after it, on the synthetic
benchmark of `./reproduce.sh` (seed 0), on one 2-core x86-64 machine (Intel Xeon with AMX) with
the pinned stack, 2026-12-06 (tests/common_eval/test_smoke_spread.py checks one entry per demo task). A seed's number also moves between CPUs (other float rounding), so
the range is a guide, not a test.
"""
from __future__ import annotations

SMOKE_SPREAD = {
    ("pul", None, "duke", "market"): {"seeds": [0, 1, 2], "mAP": [34.86, 30.41, 33.20]},
    ("buc", None, None, "market"): {"seeds": [0, 1, 2], "mAP": [45.18, 36.95, 42.55]},
    ("cdsm", None, None, "market"): {"seeds": [1, 2, 3], "mAP": [49.18, 60.37, 57.25]},
    ("ccc", "hdc", None, "market"): {"seeds": [999, 1000, 1001], "mAP": [54.39, 57.94, 54.09]},
    ("auxusl", "ours", None, "dukevideo"): {"seeds": [1, 2, 3], "mAP": [63.14, 73.02, 72.44]},
    ("auxusl", "ours-", None, "dukevideo"): {"seeds": [1, 2, 3], "mAP": [55.55, 57.11, 62.97]},
}


def smoke_spread(method: str, variant: str | None, source: str | None, target: str) -> dict | None:
    """{"seeds", "mAP", "mean", "lo", "hi"} of the demo task, or None when it was not measured."""
    entry = SMOKE_SPREAD.get((method, variant, source, target))
    if entry is None:
        return None
    values = entry["mAP"]
    return {**entry, "mean": sum(values) / len(values), "lo": min(values), "hi": max(values)}


def describe(spread: dict) -> str:
    """The table cell: mean (lowest-highest) over the seeds."""
    return f"{spread['mean']:.1f} ({spread['lo']:.1f}–{spread['hi']:.1f})"


def verdict(record: dict) -> str | None:
    """One line placing a smoke run's mAP in the measured spread, or None (not a smoke run of a
    measured task). Outside the range by more than half its width (at least 3 points) says
    'check the set-up'."""
    if record.get("scale") != "smoke":
        return None
    spread = smoke_spread(record["method"], record.get("variant"), record.get("source"), record["target"])
    if spread is None:
        return None
    got = round(float(record["common"]["mAP"]), 2)   # the spread is recorded to 0.01
    slack = max(3.0, (spread["hi"] - spread["lo"]) / 2)
    task = f"{record['source']} → {record['target']}" if record.get("source") else record["target"]
    name = " ".join(p for p in (record["method"], record.get("variant") or "", task) if p)
    where = (f"{len(spread['mAP'])} seeds gave {spread['lo']:.1f}–{spread['hi']:.1f} "
             f"(mean {spread['mean']:.1f}) on the README's machine")
    if spread["lo"] <= got <= spread["hi"]:
        return f"{name}: mAP {got:.1f}, within the expected spread ({where})"
    if spread["lo"] - slack <= got <= spread["hi"] + slack:
        return f"{name}: mAP {got:.1f}, near the expected spread ({where}): other CPUs round differently"
    return (f"{name}: mAP {got:.1f}, far outside the expected spread ({where}): check the set-up "
            "(./reproduce.sh test --fast)")
