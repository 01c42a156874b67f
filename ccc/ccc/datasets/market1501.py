"""Market-1501 (Zheng et al., ICCV 2015): ``Market-1501-v15.09.15/``.

Names ``PPPP_cCsS_FFFFFF_BB.jpg``: pid (``-1`` = junk, dropped; ``0000`` = distractor, kept in
the gallery; at most 1501), camera 1..6 (3C's regex ``([-\\d]+)_c(\\d)``). Official: train
12,936 images / 751 ids, query 3,368, gallery 15,913.
"""
from __future__ import annotations

from pathlib import Path

from .base import ReIDImageDataset, parse_market_style, require_dirs

SUBDIRS = ("bounding_box_train", "query", "bounding_box_test")


class Market1501(ReIDImageDataset):
    name = "market1501"
    folder = "Market-1501-v15.09.15"
    official = {"train": (12936, 751), "query": 3368, "gallery": 15913}
    layout_help = "bounding_box_train/, query/, bounding_box_test/; 12,936 / 3,368 / 15,913 images"

    def load(self, root: Path):
        require_dirs(root, SUBDIRS)
        return tuple(parse_market_style(root / d, r"([-\d]+)_c(\d)", 6, max_pid=1501) for d in SUBDIRS)
