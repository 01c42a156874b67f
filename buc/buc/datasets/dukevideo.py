"""DukeMTMC-VideoReID (``DukeMTMC-VideoReID/``), read from the official layout.

``{train,query,gallery}/<pid4>/<tracklet4>/*.jpg``; frame name ``0001_C6_F0099_X30823.jpg`` (the
distributed zip: pid, camera 1-8, frame index in the tracklet, frame number in the camera video)
or ``0001C6F0099X30823.jpg`` (the dataset README); both are parsed. The original read the camera
as character 6, which only works with the underscore naming. Frames are taken in name order.
"""
from __future__ import annotations

import re
from pathlib import Path

from .base import MalformedDatasetError, ReIDDataset, Tracklet

PATTERN = re.compile(r"^(\d+)_?C(\d)_?F")


class DukeMTMCVideoReID(ReIDDataset):
    name = "DukeMTMC-VideoReID"
    folder = "DukeMTMC-VideoReID"
    num_cams = 8
    is_video = True
    max_pid = 7140
    unit = "tracklets"
    layout_hint = "train/, query/, gallery/ holding <pid>/<tracklet>/<frames>.jpg"
    expected = {"train": (702, 2196), "query": (702, 702), "gallery": (1110, 2636)}

    @classmethod
    def scan(cls, official: Path):
        out = {}
        for split in ("train", "gallery", "query"):
            if not (official / split).is_dir():
                raise cls.missing_subfolder(official, split)
        for split in ("train", "gallery", "query"):
            folder = official / split
            records = []
            for pdir in sorted(p for p in folder.iterdir() if p.is_dir()):
                if not pdir.name.isdigit():
                    raise MalformedDatasetError(f"{pdir}: identity folders must be numbers")
                pid = int(pdir.name)
                if not 0 <= pid <= cls.max_pid:
                    raise MalformedDatasetError(f"{pdir}: pid {pid} out of range 0..{cls.max_pid}")
                for tdir in sorted(p for p in pdir.iterdir() if p.is_dir()):
                    frames = sorted(p for p in tdir.iterdir() if p.suffix.lower() == ".jpg")
                    if not frames:
                        raise MalformedDatasetError(f"{tdir}: empty tracklet folder")
                    cams = set()
                    for f in frames:
                        m = PATTERN.match(f.name)
                        if m is None or int(m.group(1)) != pid:
                            raise MalformedDatasetError(
                                f"{f}: the name does not follow 'PPPP_CC_FFFF_XXXXX.jpg' with pid {pid}")
                        cams.add(int(m.group(2)))
                    if len(cams) != 1 or not 1 <= min(cams) <= cls.num_cams:
                        raise MalformedDatasetError(f"{tdir}: frames from cameras {sorted(cams)}")
                    records.append(Tracklet(pid, cams.pop() - 1, frames))
            if not records:
                raise MalformedDatasetError(f"{folder} holds no tracklet (expected {cls.layout_hint})")
            out[split] = records
        return out
