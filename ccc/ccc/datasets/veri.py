"""VeRi-776 (Liu et al., ICME 2016): ``VeRi/``.

Folders ``image_train/``, ``image_query/``, ``image_test/`` (3C's README draws them as
``bounding_box_*``, but its loader, like ClusterContrast's, reads ``image_*``); names
``VVVV_cCCC_FFFFFFFF_N.jpg``: vehicle id (at most 776; -1 junk, dropped), camera 1..20 (3C's
regex ``([-\\d]+)_c([-\\d]+)``). Official: train 37,778 images / 576 ids, query 1,678,
gallery 11,579. The list files (``name_*.txt``, ``gt_image.txt``, ``jk_image.txt``) are not
read: 3C evaluates VeRi with the same rule as the person sets (drop gallery images of the
query's id *and* camera), which for VeRi is the standard protocol.
"""
from __future__ import annotations

from pathlib import Path

from .base import ReIDImageDataset, parse_market_style, require_dirs

SUBDIRS = ("image_train", "image_query", "image_test")


class VeRi(ReIDImageDataset):
    name = "veri"
    folder = "VeRi"
    official = {"train": (37778, 576), "query": 1678, "gallery": 11579}
    layout_help = "image_train/, image_query/, image_test/; 37,778 / 1,678 / 11,579 images"

    def load(self, root: Path):
        require_dirs(root, SUBDIRS)
        return tuple(parse_market_style(root / d, r"([-\d]+)_c([-\d]+)", 20, max_pid=776) for d in SUBDIRS)
