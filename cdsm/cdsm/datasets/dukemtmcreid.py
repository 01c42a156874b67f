"""DukeMTMC-reID (Zheng et al., ICCV 2017): ``DukeMTMC-reID/``.

Names ``PPPP_cC_fFFFFFFF.jpg``: pid, camera 1..8, frame. The gallery holds 408 distractor
identities seen only there. Official: train 16,522 images / 702 ids, query 2,228, gallery 17,661.
The dataset was withdrawn by its authors in 2019; bring your own copy.
"""
from __future__ import annotations

from pathlib import Path

from .base import ReIDImageDataset, parse_market_style, require_dirs

SUBDIRS = ("bounding_box_train", "query", "bounding_box_test")


class DukeMTMCreID(ReIDImageDataset):
    name = "dukemtmcreid"
    folder = "DukeMTMC-reID"
    official = {"train": (16522, 702), "query": 2228, "gallery": 17661}
    layout_help = "bounding_box_train/, query/, bounding_box_test/; 16,522 / 2,228 / 17,661 images"

    def load(self, root: Path):
        require_dirs(root, SUBDIRS)
        return tuple(parse_market_style(root / d, r"([-\d]+)_c(\d)", 8) for d in SUBDIRS)
