"""One self-contained HTML report of every run under a folder: no server, no network.

    python -m common_eval.report [LOGDIR] [--out FILE]   (default: logs, LOGDIR/report.html)

From every results.json under LOGDIR: the comparison table (the paper's row beside each run,
``selected`` saying how each run's numbers were chosen: best-on-test or last), then per run its
curves of mAP, rank-1, cluster count and loss by epoch/step (from the record's ``history``,
whichever of these the method writes), its ranked-list grid ``<run>/visrank/grid.jpg`` where
``test.py --visrank`` wrote one, its command, git commit and configuration. Plots and pictures
are embedded as data URIs and a Content-Security-Policy forbids loading anything else, so the
file can be mailed or archived and opens offline. A small inline script marks, once the page has
loaded, how many pictures decoded (``<body data-images-ok="N/M">``), which the tests read through
headless Chromium.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path

from .results import atomic_write_text, load_results
from .table import HEADER, _fmt, table_rows

X_KEYS = ("epoch", "step", "iteration")   # the first one a history uses is its x axis

CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #eee; } td.t { text-align: left; }
tr.paper td { background: #f6f6ff; color: #446; font-style: italic; }
section.run { border-top: 2px solid #888; margin-top: 28px; padding-top: 8px; }
pre { background: #f4f4f4; padding: 6px; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
img { display: block; margin: 6px 0; max-width: 100%; }
.note { color: #777; font-style: italic; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 13px; }
dt { font-weight: bold; } dd { margin: 0; }
"""

# counts the pictures that decoded, once everything has loaded (read by the Chromium test)
SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; }
  }
  document.body.setAttribute("data-images-ok", ok + "/" + imgs.length);
});
"""

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")


def _esc(value) -> str:
    return html.escape("" if value is None else str(value))


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _metric(entry: dict, key: str) -> float | None:
    """A common-flavour metric of a history entry: top level (CDSM, 3C, AuxUSL), under
    ``common`` (BUC) or under ``eval.common`` (PUL)."""
    for where in ((), ("common",), ("eval", "common")):
        d = entry
        for k in where:
            d = d.get(k) if isinstance(d, dict) else None
        if isinstance(d, dict) and _number(d.get(key)) is not None:
            return _number(d[key])
    return None


def _clusters(entry: dict) -> float | None:
    v = _number(entry.get("clusters"))
    return v if v is not None else _number(entry.get("clusters_used"))   # PUL: clusters kept


SERIES = (("mAP", "mAP (%)", lambda e: _metric(e, "mAP")),
          ("rank1", "rank-1 (%)", lambda e: _metric(e, "rank1")),
          ("clusters", "clusters", _clusters),
          ("loss", "loss", lambda e: _number(e.get("loss"))))


def history_series(record: dict) -> tuple[str, dict[str, tuple[list[float], list[float]]]]:
    """(x-axis name, {series name: (xs, ys)}) of a record's history, series without any value
    left out. The x axis is the history's epoch, step or iteration (its position where none)."""
    history = [e for e in record.get("history") or [] if isinstance(e, dict)]
    x_key = next((k for k in X_KEYS if any(_number(e.get(k)) is not None for e in history)), None)
    out = {}
    for name, _, get in SERIES:
        xs, ys = [], []
        for pos, e in enumerate(history):
            y = get(e)
            x = _number(e.get(x_key)) if x_key else float(pos + 1)
            if y is not None and x is not None:
                xs.append(x)
                ys.append(y)
        if ys:
            out[name] = (xs, ys)
    return x_key or "entry", out


def curves_png(record: dict) -> bytes | None:
    """The run's curves as one PNG (a panel per series; the initial model's mAP and rank-1
    dotted), or None when its history has nothing to plot."""
    x_key, series = history_series(record)
    if not series:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    labels = {name: label for name, label, _ in SERIES}
    fig = Figure(figsize=(3.3 * len(series), 2.7), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (name, (xs, ys)) in zip(fig.subplots(1, len(series), squeeze=False)[0], series.items()):
        ax.plot(xs, ys, marker="o", markersize=3)
        initial = _number((record.get("initial") or {}).get(name)) if name in ("mAP", "rank1") else None
        if initial is not None:
            ax.axhline(initial, linestyle=":", color="gray", label="initial")
            ax.legend(fontsize=7)
        ax.set_title(labels[name], fontsize=10)
        ax.set_xlabel(x_key, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if name == "clusters":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _img(data: bytes, mime: str, alt: str) -> str:
    return (f'<img alt="{_esc(alt)}" src="data:{mime};base64,'
            f'{base64.b64encode(data).decode("ascii")}">')


def _grid_html(run_dir: Path) -> str:
    grid = run_dir / "visrank" / "grid.jpg"
    if not grid.is_file():
        return ('<p class="note">no ranked lists (run examples/test.py with --visrank K to write '
                'visrank/grid.jpg)</p>')
    from PIL import Image

    data = grid.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mime = Image.MIME.get(im.format or "", "image/jpeg")
    except (OSError, SyntaxError, ValueError) as exc:
        return f'<p class="note">{_esc(grid)} is not a readable picture ({_esc(exc)})</p>'
    return ("<h3>Ranked lists (first queries: blue query, green true match, red false match, "
            "gray junk)</h3>" + _img(data, mime, f"ranked lists {grid}"))


def _table_html(records: list[dict], anchors: dict[int, str]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in (*HEADER, "run"))
    rows = []
    for cells, rec in table_rows(records):
        tds = "".join(f'<td class="t">{_esc(c)}</td>' if i < 5 else f"<td>{_esc(c)}</td>"
                      for i, c in enumerate(cells))
        link = f'<a href="#{anchors[id(rec)]}">details</a>' if rec is not None else ""
        rows.append(f'<tr class="{"run" if rec is not None else "paper"}">{tds}<td>{link}</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _run_title(rec: dict) -> str:
    task = f"{rec['source']} → {rec['target']}" if rec.get("source") else rec["target"]
    return " ".join(str(p) for p in (rec["method"], rec.get("variant") or "", task, f"({rec['scale']})") if p)


def _run_html(rec: dict, anchor: str, root: Path) -> str:
    path = Path(rec["_path"])
    try:
        shown = path.relative_to(root)
    except ValueError:
        shown = path
    c = rec["common"]
    selected_at = next((f"{k} {rec[k]}" for k in ("best_epoch", "selected_step", "selected_epoch",
                                                   "selected_iteration") if rec.get(k) is not None), "")
    facts = [("results", shown), ("selected", f"{rec.get('selection') or 'last'} {selected_at}".strip()),
             ("mAP / rank-1 (common)", " / ".join(_fmt(c.get(k)) for k in ("mAP", "rank1"))),
             ("epochs", rec.get("epochs")), ("wall time", f"{float(rec.get('wall_seconds') or 0):.0f} s"),
             ("git commit", rec.get("git_commit") or "unknown (not run from a git checkout)")]
    parts = [f'<section class="run" id="{_esc(anchor)}"><h2>{_esc(_run_title(rec))}</h2>',
             "<dl>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in facts) + "</dl>",
             f"<h3>Command</h3><pre>{_esc(rec.get('command'))}</pre>"]
    png = curves_png(rec)
    if png is None:
        parts.append('<p class="note">no per-epoch history in results.json</p>')
    else:
        parts.append("<h3>Curves</h3>" + _img(png, "image/png", f"curves of {_run_title(rec)}"))
    parts.append(_grid_html(path.parent))
    config = json.dumps(rec.get("config"), indent=1, sort_keys=True, default=str)
    parts.append(f"<details><summary>configuration</summary><pre>{_esc(config)}</pre></details></section>")
    return "\n".join(parts)


def render_html(records: list[dict], root) -> str:
    """The report page of ``records`` (as ``load_results`` returns them) found under ``root``."""
    root = Path(root)
    ordered = sorted(records, key=lambda r: (r["method"], r.get("variant") or "", r.get("source") or "",
                                             r["target"], r["scale"], r["_path"]))
    anchors = {id(rec): f"run-{i + 1}" for i, rec in enumerate(ordered)}
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = [f"<h1>Runs under {_esc(root)}</h1>",
            f'<p class="note">{len(records)} run(s), written {_esc(now)}. Our numbers use the common '
            "(step-wise) AP; paper rows are the published numbers.</p>",
            "<h2>Comparison</h2>", _table_html(records, anchors)]
    body += [_run_html(rec, anchors[id(rec)], root) for rec in ordered]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            f"<title>Re-ID runs report: {_esc(root)}</title>\n<style>{CSS}</style>\n"
            f"<script>{SCRIPT}</script></head>\n"
            '<body data-images-ok="pending">\n' + "\n".join(body) + "\n</body></html>\n")


def write_report(logdir, out=None) -> Path:
    """Renders every results.json under ``logdir`` into ``out`` (default logdir/report.html),
    written atomically. Raises ValueError when there is none or one is unreadable."""
    root = Path(logdir)
    if not root.is_dir():
        raise ValueError(f"no such folder {root} (runs write logs/<method>/<task>/results.json)")
    records = load_results(root)
    if not records:
        raise ValueError(f"no results.json under {root}; run a method first (./reproduce.sh demo)")
    out = Path(out) if out is not None else root / "report.html"
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name")
    return atomic_write_text(out, render_html(records, root))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common_eval.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logdir", nargs="?", default="logs", help="folder searched for results.json")
    parser.add_argument("--out", default=None, help="the HTML file (default: LOGDIR/report.html)")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.logdir, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
