"""Run one rehearsal (or GPU-check) command and report what its phases cost.

    python -m common_eval.rehearse --logs LOGDIR [--clusterings N] [--label TEXT] -- COMMAND ...

COMMAND is a method's training run (``./reproduce.sh rehearse`` builds it: the paper preset on a
synthetic dataset with the real dataset's counts, a small backbone, one epoch of a few
iterations). It must write ``results.json`` into LOGDIR (or a folder named LOGDIR-<suffix>, as 3C
and AuxUSL name theirs) whose per-epoch ``history`` entries carry
``seconds`` {extract, cluster, train, evaluate, ...}, ``images`` {train, extract} and
``gpu_peak_mb``. Printed: the seconds of each phase, images/s of training and extraction, peak
resident memory of the command's processes (the largest one) and of the GPU, and, with
``--clusterings N`` (the paper run's number of clustering steps), the projected CPU-side cost of
a full paper run (N x the clustering seconds). ``rehearsal.json`` beside results.json keeps the
figures. Exits with the command's status; 2 when it wrote no results.json.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

PHASES = ("extract", "cluster", "train", "evaluate")


def find_results(logs: Path) -> list[Path]:
    """results.json of LOGDIR and of the LOGDIR-<suffix> folders beside it."""
    found = [logs / "results.json"] if (logs / "results.json").is_file() else []
    if logs.parent.is_dir():
        found += sorted(p / "results.json" for p in logs.parent.glob(logs.name + "-*")
                        if (p / "results.json").is_file())
    return found


def summarise(results: dict) -> dict:
    """Totals over the history entries of one results.json."""
    seconds = dict.fromkeys(PHASES, 0.0)
    images = {"train": 0, "extract": 0}
    gpu = None
    entries = results.get("history") or []
    for entry in entries:
        for phase in PHASES:
            seconds[phase] += float((entry.get("seconds") or {}).get(phase, 0.0))
        for kind in images:
            images[kind] += int((entry.get("images") or {}).get(kind, 0))
        if entry.get("gpu_peak_mb") is not None:
            gpu = max(gpu or 0.0, float(entry["gpu_peak_mb"]))
    rate = {k: (images[k] / seconds[p] if seconds[p] > 0 else None)
            for k, p in (("train", "train"), ("extract", "extract"))}
    return {"entries": len(entries), "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "images": images, "images_per_s": {k: (round(v, 1) if v else None) for k, v in rate.items()},
            "gpu_peak_mb": gpu}


def _fmt_rate(v):
    return "-" if v is None else f"{v:.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m common_eval.rehearse", description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", required=True, help="the --logs-dir the command writes (results.json)")
    ap.add_argument("--label", default="", help="what is rehearsed, e.g. 'cdsm market' (printed)")
    ap.add_argument("--clusterings", type=int, default=None,
                    help="clustering steps of a full paper run (for the projected CPU-side cost)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    a = ap.parse_args(argv)
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command after --")
    if a.clusterings is not None and a.clusterings < 1:
        ap.error("--clusterings must be >= 1")
    logs = Path(a.logs).resolve()
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    # ru_maxrss of the children: the largest resident set of any process the command waited for
    peak_rss_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    if rc != 0:
        how = f"was killed by signal {-rc}" if rc < 0 else f"failed (exit {rc})"
        print(f"error: the rehearsed command {how}: {' '.join(cmd)}", file=sys.stderr)
        return rc if rc > 0 else 128 - rc
    paths = find_results(logs)
    if not paths:
        print(f"error: the command wrote no results.json in {logs} (or {logs.name}-*); "
              "nothing to report", file=sys.stderr)
        return 2
    label = a.label or logs.name
    print(f"\nrehearsal: {label}  (wall {wall:.0f} s, peak RSS {peak_rss_gb:.2f} GB)")
    print(f"{'run':28s} {'extract':>8s} {'cluster':>8s} {'train':>8s} {'evaluate':>8s}"
          f" {'train img/s':>11s} {'extract img/s':>13s} {'GPU MB':>7s}")
    for path in paths:
        results = json.loads(path.read_text())
        s = summarise(results)
        if s["entries"] == 0:
            print(f"error: {path} has no history entry; nothing to report", file=sys.stderr)
            return 2
        sec = s["seconds"]
        gpu = "-" if s["gpu_peak_mb"] is None else f"{s['gpu_peak_mb']:.0f}"
        print(f"{path.parent.name:28s} {sec['extract']:8.1f} {sec['cluster']:8.1f} {sec['train']:8.1f}"
              f" {sec['evaluate']:8.1f} {_fmt_rate(s['images_per_s']['train']):>11s}"
              f" {_fmt_rate(s['images_per_s']['extract']):>13s} {gpu:>7s}")
        record = {"label": label, "command": cmd, "wall_s": round(wall, 1),
                  "peak_rss_gb": round(peak_rss_gb, 3), **s}
        if a.clusterings:
            per = sec["cluster"] / s["entries"]
            record["projected"] = {"clusterings": a.clusterings, "cluster_s": round(per * a.clusterings, 1)}
            print(f"{'':28s} projected clustering of a full paper run: {a.clusterings} x {per:.1f} s = "
                  f"{per * a.clusterings / 60:.1f} min")
        (path.parent / "rehearsal.json").write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
