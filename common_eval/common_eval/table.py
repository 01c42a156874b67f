"""Renders every results.json under a folder as one Markdown table, the paper's numbers beside.

    python -m common_eval.table [LOGDIR]        (default: ./logs)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .paper import PAPER, paper_numbers
from .results import load_results
from .smoke import describe, smoke_spread, verdict

COLUMNS = ("mAP", "rank1", "rank5", "rank10", "mINP")


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.1f}"


def _task(rec) -> str:
    return f"{rec['source']} → {rec['target']}" if rec.get("source") else rec["target"]


HEADER = ("method", "variant", "task", "scale", "selected", "mAP", "R1", "R5", "R10", "mINP",
          "native mAP (AP)", "initial mAP", "epochs", "time", "smoke mAP, 3 seeds")


def table_rows(records: list[dict],
               with_unrun_paper_rows: bool = False) -> list[tuple[list[str], dict | None]]:
    """The comparison table's rows, each ``(cells, record)``: one row per run (ours, common
    flavour), then the paper's row for the same task (``record`` None), in the order of ``HEADER``.
    ``selected`` says which model a run's numbers describe: ``best-on-test`` (the epoch or step
    with the best test mAP, as BUC, CDSM, 3C and AuxUSL report) or ``last`` (PUL)."""
    rows: list[tuple[list[str], dict | None]] = []
    seen = set()
    for rec in sorted(records, key=lambda r: (r["method"], r.get("variant") or "", _task(r),
                                              r["scale"])):
        c, n, i = rec["common"], rec["native"], rec["initial"]
        key = (rec["method"], rec.get("variant"), rec.get("source"), rec["target"])
        spread = smoke_spread(*key) if rec["scale"] == "smoke" else None
        rows.append(([rec["method"], rec.get("variant") or "", _task(rec), rec["scale"],
                      rec.get("selection") or "last", *(_fmt(c.get(k)) for k in COLUMNS),
                      f"{_fmt(n.get('mAP'))} ({n.get('ap')})", _fmt(i.get("mAP")), str(rec["epochs"]),
                      f"{rec['wall_seconds']:.0f} s", describe(spread) if spread else ""], rec))
        paper = paper_numbers(*key)
        if paper and key not in seen:
            rows.append(([rec["method"], rec.get("variant") or "", _task(rec), "paper", "published",
                          *(_fmt(paper.get(k)) for k in COLUMNS), "", "", "", "", ""], None))
        seen.add(key)
    if with_unrun_paper_rows:
        for key, paper in sorted(PAPER.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
            if key in seen:
                continue
            method, variant, source, target = key
            task = f"{source} → {target}" if source else target
            rows.append(([method, variant or "", task, "paper", "published",
                          *(_fmt(paper.get(k)) for k in COLUMNS), "", "", "", "", ""], None))
    return rows


def render(records: list[dict], with_unrun_paper_rows: bool = False) -> str:
    """Markdown: one row per run (ours, common flavour), then the paper's row for the same task
    (see ``table_rows``)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for cells, rec in table_rows(records, with_unrun_paper_rows):
        if rec is None:  # a paper row: only the published metrics
            published = cells[:5 + len(COLUMNS)]
            lines.append("| " + " | ".join(published) + " |" + " |" * (len(HEADER) - len(published)))
        else:
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common_eval.table", description=__doc__)
    parser.add_argument("logdir", nargs="?", default="logs", help="folder searched for results.json")
    parser.add_argument("--paper", action="store_true", help="also list paper rows not run yet")
    args = parser.parse_args(argv)
    root = Path(args.logdir)
    if not root.is_dir():
        print(f"error: no such folder {root} (runs write logs/<method>/<task>/results.json)",
              file=sys.stderr)
        return 2
    records = load_results(root)
    if not records and not args.paper:
        print(f"no results.json under {root}; run a method first (./reproduce.sh demo)",
              file=sys.stderr)
        return 1
    print(render(records, with_unrun_paper_rows=args.paper))
    ordered = sorted(records, key=lambda r: (r["method"], r.get("variant") or ""))
    notes = [v for v in map(verdict, ordered) if v]
    if notes:
        print()
        print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
