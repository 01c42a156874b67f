"""What every dataset loader shares: records, the folder check, statistics and count check.

A record is ``(path, pid, camid)``: the image file, the person id parsed from the file name
(``-1`` junk, ``0`` distractor) and the camera number parsed from the file name (1-based, as in
the names). The PUL scripts parse ``pid = int(name.split('_')[0])`` and ``camera =
int(name.split('_')[1][1])`` of every file; the loaders use the datasets' full naming rules instead
(accepting what the original parsed in the real releases: junk ``-1``, distractors ``0000``, a doubled
``.jpg.jpg`` extension) and reject, naming the file, a ``.jpg`` that does not follow them.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import PULError

Record = tuple  # (path: str, pid: int, camid: int)


class DatasetError(PULError):
    """A dataset is missing or malformed; the message names the expected layout."""


def synthetic_manifest(folder: Path) -> dict | None:
    """The manifest common_eval.synthetic writes beside a dataset folder, if any."""
    path = folder.parent / f"{folder.name}.synthetic.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
    return None


@dataclass
class ImageDataset:
    """A re-ID image dataset: train, query and gallery records of one folder."""

    name: str
    folder: Path
    train: list = field(default_factory=list)
    query: list = field(default_factory=list)
    gallery: list = field(default_factory=list)
    synthetic: bool = False

    # ------------------------------------------------------------------ the PUL lists
    def train_labels(self) -> list[int]:
        """Labels 0..#IDs-1 in ascending pid order, aligned with ``train`` (the author's train.list)."""
        pids = sorted({pid for _, pid, _ in self.train})
        index = {p: i for i, p in enumerate(pids)}
        return [index[pid] for _, pid, _ in self.train]

    def known_labels(self, known: int) -> list[int]:
        """The author's ``50train.list`` / ``25train.list``: images of the ``known`` lowest train pids
        keep labels 0..known-1, every other image gets -1."""
        return [lab if lab < known else -1 for lab in self.train_labels()]

    @property
    def num_train_ids(self) -> int:
        return len({pid for _, pid, _ in self.train})

    # ------------------------------------------------------------------ statistics
    @staticmethod
    def _stats(records) -> tuple[int, int, int]:
        pids = {pid for _, pid, _ in records if pid != -1}
        cams = {cam for _, _, cam in records}
        return len(pids), len(records), len(cams)

    def statistics(self) -> dict:
        return {split: dict(zip(("ids", "images", "cameras"), self._stats(getattr(self, split))))
                for split in ("train", "query", "gallery")}

    def summary(self) -> str:
        """The torchreid-style table."""
        lines = [f"=> {self.name} loaded from {self.folder}" + (" (synthetic)" if self.synthetic else ""),
                 "  ----------------------------------------",
                 "  subset   | # ids | # images | # cameras",
                 "  ----------------------------------------"]
        for split, s in self.statistics().items():
            lines.append(f"  {split:8s} | {s['ids']:5d} | {s['images']:8d} | {s['cameras']:9d}")
        lines.append("  ----------------------------------------")
        return "\n".join(lines)

    def check_counts(self, official: dict) -> list[str]:
        """Compares with the official statistics ({split: (ids or None, images)}); warns on a
        difference unless the folder is synthetic. Returns the differences."""
        diffs = []
        stats = self.statistics()
        for split, (ids, images) in official.items():
            got = stats[split]
            if images is not None and got["images"] != images:
                diffs.append(f"{split}: {got['images']} images, the official {self.name} has {images}")
            if ids is not None and got["ids"] != ids:
                diffs.append(f"{split}: {got['ids']} identities, the official {self.name} has {ids}")
        if diffs and not self.synthetic:
            warnings.warn(f"{self.name} at {self.folder} differs from the official release: "
                          + "; ".join(diffs), stacklevel=3)
        return diffs


def find_folder(root, folder_name: str, subfolders) -> Path:
    """``root/folder_name``, or ``root`` itself when it is that folder (it holds the subfolders)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data root '{root}' does not exist or is not a folder")
    if (root / folder_name).is_dir():
        return root / folder_name
    if root.name == folder_name or all((root / s).is_dir() for s in subfolders):
        return root
    subs = ", ".join(s + "/" for s in subfolders)
    raise DatasetError(f"dataset folder '{root / folder_name}' not found: put the official "
                       f"'{folder_name}/' (with {subs}) under the data root '{root}' "
                       "(--data-root / REID_DATA)")


def read_split(folder: Path, sub: str, pattern: re.Pattern, expected: str, drop_junk: bool,
               dataset: str, counts_hint: str) -> list:
    """Parses every .jpg of folder/sub into records, sorted by file name (the author's lists)."""
    d = folder / sub
    if not d.is_dir():
        raise DatasetError(f"{dataset}: missing folder '{d}'. Expected {folder}/ to hold {counts_hint}")
    records = []
    for p in sorted(d.iterdir()):
        if p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue  # Thumbs.db and the like
        m = pattern.match(p.name)
        if not m:
            raise DatasetError(f"{dataset}: file '{p}' does not follow the naming rule {expected}")
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1 and drop_junk:
            continue
        records.append((str(p), pid, cam))
    if not records:
        raise DatasetError(f"{dataset}: folder '{d}' holds no image named like {expected}. "
                           f"Expected {folder}/ to hold {counts_hint}")
    return records
