"""Market-1501 (``Market-1501-v15.09.15/``), read from the official layout.

``bounding_box_train/`` (12,936), ``bounding_box_test/`` (19,732 incl. 3,819 junk), ``query/``
(3,368). Name ``0002_c1s1_000451_03.jpg``: pid, camera 1-6, sequence, frame, box. Junk (pid -1)
is dropped at conversion (Open-ReID convention; the original converter asserts pid >= 0, so its
package had none); distractors (pid 0) stay in the gallery. Each image is its own one-frame
"tracklet" with its own video id (BUC issue #1).
"""
from __future__ import annotations

import re
from pathlib import Path

from .base import MalformedDatasetError, ReIDDataset, Tracklet

# pid: digits, or -1 (junk); Open-ReID's ([-\d]+) would pass '00-8' on to int() and crash
PATTERN = re.compile(r"^(-1|\d+)_c(\d)")


def scan_image_folders(cls, official: Path, subdirs, num_cams: int, max_pid: int):
    """Shared by Market-1501 and DukeMTMC-reID: one image per record, junk (-1) dropped."""
    out = {}
    for split, sub in subdirs:
        folder = official / sub
        if not folder.is_dir():
            raise cls.missing_subfolder(official, sub)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg")
        if not files:
            raise MalformedDatasetError(f"{folder} holds no .jpg image (expected {cls.layout_hint})")
        records, junk = [], 0
        for f in files:
            m = PATTERN.match(f.name)
            if m is None:
                raise MalformedDatasetError(f"{f}: the name does not follow the {cls.name} rule "
                                            "'PPPP_cC...jpg' (pid: digits or -1, camera digit); "
                                            "rename or remove the file")
            pid, cam = int(m.group(1)), int(m.group(2))
            if pid == -1:
                junk += 1
                continue
            if not (0 <= pid <= max_pid and 1 <= cam <= num_cams):
                raise MalformedDatasetError(f"{f}: pid {pid} or camera {cam} out of range "
                                            f"(pid 0..{max_pid}, camera 1..{num_cams})")
            records.append(Tracklet(pid, cam - 1, [f]))
        records.sort(key=lambda t: (t.pid, t.frames[0].name))
        out[split] = records
        if junk:
            print(f"  {sub}: dropped {junk} junk images (pid -1)")
    return out


class Market1501(ReIDDataset):
    name = "market1501"
    folder = "Market-1501-v15.09.15"
    num_cams = 6
    is_video = False
    max_pid = 1502
    vid_width = 5
    unit = "images"
    layout_hint = "bounding_box_train/, bounding_box_test/, query/ with 12,936 / 19,732 / 3,368 images"
    expected = {"train": (751, 12936), "query": (750, 3368), "gallery": (751, 15913)}

    @classmethod
    def scan(cls, official: Path):
        return scan_image_folders(cls, official, (("train", "bounding_box_train"),
                                                  ("gallery", "bounding_box_test"), ("query", "query")),
                                  cls.num_cams, cls.max_pid)
