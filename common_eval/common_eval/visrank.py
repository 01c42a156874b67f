"""Ranked-list pictures: each query beside its top-k gallery items, true and false matches framed.

    from common_eval import visualize_ranked_results
    paths = visualize_ranked_results(distmat, query, gallery, "logs/cdsm/market/visrank",
                                     topk=10, max_queries=20)

``query`` and ``gallery`` are sequences of ``(path_or_frames, pid, camid)``: an image path, or for
video a list of frame paths (the middle frame is drawn). One JPEG per query (``0000_<name>.jpg``,
in query order) and ``grid.jpg``, the rows of the first 8 queries stacked, are written into
``out_dir``; the per-query paths are returned.

Each row: the query (blue frame), then the gallery in ranked order (ascending distance, ties by
gallery index, as ``common_eval.evaluate`` ranks) until ``topk`` valid items are shown: green =
true match (same pid, other camera), red = false match. Junk, which the protocol removes (same pid
and same camera as the query, or gallery pid -1), is shown in place with a gray frame and the word
"junk" and takes no rank number, so rank k is rank k of the CMC. At most ``topk`` junk items are
drawn per row; further junk before the k-th valid item is left out and counted under the query.
Every picture is resized to a fixed cell of ``CELL`` (width, height) pixels; the rank and the
distance are printed under each.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np

CELL = (64, 128)          # width, height of every picture
BORDER = 4                # frame width in pixels
GAP = 6                   # between tiles (and around the row)
QUERY_GAP = 18            # extra space between the query and its first gallery item
TEXT_H = 26               # two lines of text under each tile
GRID_ROWS = 8             # queries stacked in grid.jpg

BLUE = (0, 60, 255)
GREEN = (0, 190, 0)
RED = (230, 0, 0)
GRAY = (128, 128, 128)
WHITE = (255, 255, 255)
TEXT = (0, 0, 0)

TILE_W = CELL[0] + 2 * BORDER
TILE_H = CELL[1] + 2 * BORDER
ROW_H = GAP + TILE_H + TEXT_H + GAP


def tile_x(position: int) -> int:
    """Left edge of the tile at ``position`` in a row: 0 is the query, 1.. the gallery items."""
    if position == 0:
        return GAP
    return GAP + TILE_W + QUERY_GAP + (position - 1) * (TILE_W + GAP)


def row_width(num_gallery_tiles: int) -> int:
    return tile_x(num_gallery_tiles + 1) if num_gallery_tiles else GAP + TILE_W + GAP


def ranked_row(dist_row, q_pid: int, q_camid: int, g_pids, g_camids, topk: int):
    """The tiles of one query's row: a list of ``(gallery_index, kind, rank)`` with kind "true",
    "false" or "junk" (rank None), up to the ``topk``-th valid item, plus the number of junk
    items left out (beyond ``topk`` drawn ones)."""
    order = np.argsort(np.asarray(dist_row), kind="stable")
    g_pids, g_camids = np.asarray(g_pids), np.asarray(g_camids)
    tiles, rank, junk_drawn, junk_hidden = [], 0, 0, 0
    for g in order:
        if rank >= topk:
            break
        pid, cam = int(g_pids[g]), int(g_camids[g])
        if pid == -1 or (pid == q_pid and cam == q_camid):
            if junk_drawn < topk:
                tiles.append((int(g), "junk", None))
                junk_drawn += 1
            else:
                junk_hidden += 1
            continue
        rank += 1
        tiles.append((int(g), "true" if pid == q_pid else "false", rank))
    return tiles, junk_hidden


def _display_source(item):
    """The path or PIL image to draw for an item: an image, or the middle of a frame list."""
    if isinstance(item, (list, tuple)):
        if not item:
            raise ValueError("empty frame list (a tracklet needs at least one frame)")
        return _display_source(item[len(item) // 2])
    return item


def _load_cell(item):
    from PIL import Image

    src = _display_source(item)
    if isinstance(src, Image.Image):
        img = src
    else:
        if not isinstance(src, (str, os.PathLike)):
            raise ValueError(f"expected an image path or a list of frame paths, got {type(src).__name__}")
        try:
            with Image.open(src) as im:
                im.load()
                img = im.copy()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"cannot read image {src}: {exc}") from exc
    return img.convert("RGB").resize(CELL, Image.BILINEAR)


def _short_name(item) -> str:
    src = _display_source(item)
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        stem = p.parent.name if isinstance(item, (list, tuple)) and p.parent.name else p.stem
    else:
        stem = "image"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem)[:60] or "query"


def _fmt_dist(d: float) -> str:
    return f"{d:.3f}" if abs(d) < 100 else f"{d:.3g}"


def _draw_tile(canvas, draw, x: int, cell, colour, lines) -> None:
    draw.rectangle([x, GAP, x + TILE_W - 1, GAP + TILE_H - 1], fill=colour)
    canvas.paste(cell, (x + BORDER, GAP + BORDER))
    y = GAP + TILE_H + 2
    for line in lines:
        draw.text((x + 1, y), line, fill=TEXT)
        y += 12


def _row_image(query_item, q_pid, q_camid, tiles, junk_hidden, gallery, dist_row, cells):
    from PIL import Image, ImageDraw

    canvas = Image.new("RGB", (row_width(len(tiles)), ROW_H), WHITE)
    draw = ImageDraw.Draw(canvas)
    q_lines = ["query", f"id {q_pid} c {q_camid}"]
    if junk_hidden:
        q_lines[0] = f"query +{junk_hidden}j"
    _draw_tile(canvas, draw, tile_x(0), cells(query_item), BLUE, q_lines)
    colours = {"true": GREEN, "false": RED, "junk": GRAY}
    for pos, (g, kind, rank) in enumerate(tiles, start=1):
        label = "junk" if kind == "junk" else f"#{rank}"
        _draw_tile(canvas, draw, tile_x(pos), cells(gallery[g][0]), colours[kind],
                   [label, _fmt_dist(float(dist_row[g]))])
    return canvas


def _save_jpeg(img, path: Path) -> Path:
    """JPEG through a temporary file in the same folder and a rename (never a half-written file)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92, subsampling=0)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.getvalue())
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _records(name: str, items):
    try:
        items = list(items)
        pids = np.array([int(r[1]) for r in items], dtype=np.int64)
        cams = np.array([int(r[2]) for r in items], dtype=np.int64)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{name} must be a sequence of (path_or_frames, pid, camid): {exc}") from exc
    return items, pids, cams


def visualize_ranked_results(distmat, query, gallery, out_dir, *, topk: int = 10,
                             max_queries: int | None = 20) -> list[Path]:
    """Writes one ranked-list JPEG per query (the first ``max_queries``; None or 0: all) and
    ``out_dir/grid.jpg``; returns the per-query paths in query order. See the module docstring."""
    from PIL import Image

    query, q_pids, q_cams = _records("query", query)
    gallery, g_pids, g_cams = _records("gallery", gallery)
    shape = np.shape(distmat)
    if shape != (len(query), len(gallery)):
        raise ValueError(f"distmat has shape {shape}, expected (len(query), len(gallery)) = "
                         f"({len(query)}, {len(gallery)})")
    if not len(query) or not len(gallery):
        raise ValueError("empty query set or gallery")
    if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
        raise ValueError(f"topk must be a positive integer, got {topk!r}")
    if max_queries is not None and (isinstance(max_queries, bool)
                                    or not isinstance(max_queries, (int, np.integer)) or max_queries < 0):
        raise ValueError(f"max_queries must be None or an integer >= 0, got {max_queries!r}")
    n = len(query) if not max_queries else min(int(max_queries), len(query))
    dist = np.asarray(distmat[:n], dtype=np.float64)   # only the rows drawn (Q x G may be large)
    bad = ~np.isfinite(dist[:n]).all(axis=1)
    if bad.any():
        raise ValueError(f"distmat row {int(np.argmax(bad))} holds NaN or inf")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    cache: dict[int, Image.Image] = {}

    def cells(item):  # a gallery item recurring across queries is read once
        key = id(item)
        if key not in cache:
            cache[key] = _load_cell(item)
        return cache[key]

    paths, rows = [], []
    for i in range(n):
        tiles, hidden = ranked_row(dist[i], int(q_pids[i]), int(q_cams[i]), g_pids, g_cams, topk)
        row = _row_image(query[i][0], int(q_pids[i]), int(q_cams[i]), tiles, hidden, gallery, dist[i],
                         cells)
        paths.append(_save_jpeg(row, out_dir / f"{i:04d}_{_short_name(query[i][0])}.jpg"))
        if i < GRID_ROWS:
            rows.append(row)
    grid = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), WHITE)
    y = 0
    for r in rows:
        grid.paste(r, (0, y))
        y += r.height
    _save_jpeg(grid, out_dir / "grid.jpg")
    return paths
