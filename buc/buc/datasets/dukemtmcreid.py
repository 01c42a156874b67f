"""DukeMTMC-reID (``DukeMTMC-reID/``), read from the official layout.

``bounding_box_train/`` (16,522), ``bounding_box_test/`` (17,661, with 408 distractor
identities), ``query/`` (2,228). Name ``0005_c2_f0046985.jpg``: pid, camera 1-8, frame. There is
no junk id; a pid -1 would be dropped as for Market. One image = one one-frame "tracklet".
"""
from __future__ import annotations

from pathlib import Path

from .base import ReIDDataset
from .market1501 import scan_image_folders


class DukeMTMCreID(ReIDDataset):
    name = "duke"
    folder = "DukeMTMC-reID"
    num_cams = 8
    is_video = False
    max_pid = 9999
    unit = "images"
    layout_hint = "bounding_box_train/, bounding_box_test/, query/ with 16,522 / 17,661 / 2,228 images"
    expected = {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661)}

    @classmethod
    def scan(cls, official: Path):
        return scan_image_folders(cls, official, (("train", "bounding_box_train"),
                                                  ("gallery", "bounding_box_test"), ("query", "query")),
                                  cls.num_cams, cls.max_pid)
