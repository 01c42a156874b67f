"""What every BUC dataset shares: the converted layout and its loader (spec B2).

The original reads one intermediate layout per dataset, built by "download()" from a repackaged,
video-style tree (``<split>/<pid>/<vid>/<frames>``) that users could not rebuild (BUC issues
#30/#31). Here each dataset file reads its *official* layout (``scan``) and ``buc.convert`` writes
the same intermediate layout the original reads:

    <converted>/images/PPPP_CC_VVVVV_FFFF.jpg    every frame, renamed (pid, 0-based camera,
                                                 video id, frame index); hard links by default
    <converted>/meta.json     identities[pid][cam] = {vid: [frame names]}, query / gallery as
                              lists of frame-name lists, plus the converter's record
    <converted>/splits.json   [{"train": pids, "query": pids, "gallery": pids}]
    <converted>/origins.json  converted frame name -> official file (read only to name a bad file)

Records are (frames tuple, pid, cam, vid), as in Open-ReID's video datasets: train grouped by
identity (pid, then camera, then video id), query and gallery in the order of meta.json.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..utils.serialization import read_json

CONVERTER_VERSION = 2   # 2: the record holds a signature of the official folder's listing


def cache_root() -> Path:
    """Where converted copies live: ${XDG_CACHE_HOME:-~/.cache}/buc/converted (never the data root,
    which may be read-only or shared)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "buc" / "converted"


def default_converted_dir(name: str, official: Path) -> Path:
    """One converted copy per official folder: <cache>/<name>-<sha1 of its absolute path>."""
    key = hashlib.sha1(str(Path(official).resolve()).encode()).hexdigest()[:16]
    return cache_root() / f"{name}-{key}"


def listing_signature(official: Path) -> str:
    """sha1 of the folder's listing: every relative path, and size and mtime for the files that
    are not frames (MARS info/ files, lists). Adding, removing or renaming a frame, or editing an
    info file, changes it; reading frames does not. One directory walk, no frame is opened."""
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(official):
        dirnames.sort()
        rel = os.path.relpath(dirpath, official)
        h.update(f"D {rel}\n".encode())
        for name in sorted(filenames):
            if name.lower().endswith(".jpg"):
                h.update(f"F {name}\n".encode())
            else:
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"F {name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class Tracklet:
    """One image (one frame) or one tracklet of the official layout, as a dataset file scans it."""
    pid: int
    cam: int                       # 0-based
    frames: list = field(default_factory=list)  # official files, in frame order


class DatasetNotFoundError(FileNotFoundError):
    """The official dataset folder (or a part of it) is missing; the message says what to put where."""


class MalformedDatasetError(ValueError):
    """The official folder exists but does not follow the dataset's naming rules or layout."""


def synthetic_manifest(official: Path) -> dict | None:
    """common_eval.synthetic leaves <root>/<folder>.synthetic.json beside a generated dataset."""
    p = official.parent / f"{official.name}.synthetic.json"
    return json.loads(p.read_text()) if p.is_file() else None


def source_fingerprint(official: Path) -> dict:
    """What the converted copy was made from: the folder, and the generator record if synthetic
    (a regenerated synthetic dataset then triggers a new conversion)."""
    fp = {"source": str(official.resolve()), "version": CONVERTER_VERSION,
          "listing": listing_signature(official)}
    p = official.parent / f"{official.name}.synthetic.json"
    if p.is_file():
        fp["synthetic_sha1"] = hashlib.sha1(p.read_bytes()).hexdigest()
    return fp


class ReIDDataset:
    """Base class: subclasses set the class attributes and implement ``scan``."""

    name: str = ""             # the original's dataset name (datasets.create)
    folder: str = ""           # official folder under the data root
    num_cams: int = 0
    is_video: bool = False
    max_pid: int = 0
    vid_width: int = 4         # digits of the video id in converted names (Market: 5)
    unit: str = "images"
    layout_hint: str = ""      # what the official folder must contain (for error messages)
    # official statistics (ids, images or tracklets) as loaded here; a mismatch warns
    expected: dict = {}

    def __init__(self, data_root, converted_dir=None, link: str = "hard", reconvert: bool = False,
                 verbose: bool = True, progress: bool | None = None):
        self.data_root = Path(data_root)
        self.official = self.data_root / self.folder
        self.check_official(self.official)
        self.root = Path(converted_dir) if converted_dir else default_converted_dir(self.name, self.official)
        if reconvert or not self.is_converted(self.root, self.official):
            from ..convert import convert
            convert(type(self), self.official, self.root, link=link, verbose=verbose, progress=progress)
        self.train, self.query, self.gallery = [], [], []
        self.num_train_ids = 0
        self._origins = None
        self.load(verbose=verbose)

    # ------------------------------------------------------------------ official layout
    @classmethod
    def check_official(cls, official: Path) -> None:
        if not official.is_dir():
            raise DatasetNotFoundError(
                f"dataset '{cls.name}' not found: expected the official folder {official} "
                f"({cls.layout_hint}). Put your copy there (or pass --data_dir DIR holding "
                f"{cls.folder}/).")

    @classmethod
    def scan(cls, official: Path) -> dict[str, list[Tracklet]]:
        """{'train': [...], 'gallery': [...], 'query': [...]} from the official layout."""
        raise NotImplementedError

    @classmethod
    def missing_subfolder(cls, official: Path, sub: str) -> DatasetNotFoundError:
        return DatasetNotFoundError(f"dataset '{cls.name}' at {official} is incomplete: the folder "
                                    f"{official / sub} is missing (expected: {cls.layout_hint})")

    # ------------------------------------------------------------------ converted layout
    @staticmethod
    def is_converted(root: Path, official: Path) -> bool:
        """Integrity check: images/, meta.json and splits.json exist (the original's check) and
        the converter's record matches the official folder (our addition)."""
        if not ((root / "images").is_dir() and (root / "meta.json").is_file()
                and (root / "splits.json").is_file()):
            return False
        try:
            meta = read_json(root / "meta.json")
        except (OSError, json.JSONDecodeError):
            return False
        return meta.get("converter") == source_fingerprint(official)

    @property
    def images_dir(self) -> str:
        return str(self.root / "images")

    def origin_of(self, fname: str) -> str | None:
        """The official file a converted frame came from (loaded lazily, for error messages)."""
        if self._origins is None:
            p = self.root / "origins.json"
            self._origins = read_json(p) if p.is_file() else {}
        return self._origins.get(fname)

    def load(self, verbose: bool = True) -> None:
        split = read_json(self.root / "splits.json")[0]
        meta = read_json(self.root / "meta.json")
        identities = meta["identities"]
        # train: grouped by identity (pid ascending, then camera, then video id), relabelled
        self.train = []
        for index, pid in enumerate(split["train"]):
            for cam, videos in enumerate(identities[pid]):
                for vid, frames in videos.items():
                    self.train.append((tuple(frames), index, cam, int(vid)))
        self.num_train_ids = len(split["train"])
        self.query = [self._record(f) for f in meta["query"]]
        self.gallery = [self._record(f) for f in meta["gallery"]]
        self.split = split
        if verbose:
            self.print_summary()
        self.check_counts()

    @staticmethod
    def _record(frames) -> tuple:
        pid, cam, vid, _ = map(int, os.path.splitext(frames[0])[0].split("_"))
        return (tuple(frames), pid, cam, vid)

    def statistics(self) -> dict:
        def stat(records, pids=None):
            ids = len({r[1] for r in records}) if pids is None else pids
            return {"ids": ids, self.unit: len(records), "cams": len({r[2] for r in records})}
        return {"train": stat(self.train, self.num_train_ids), "query": stat(self.query),
                "gallery": stat(self.gallery)}

    def print_summary(self) -> None:
        st = self.statistics()
        unit = "tracklets" if self.is_video else "images"
        print(f"=> {type(self).__name__} loaded (official: {self.official}; converted: {self.root})")
        print("  ----------------------------------------")
        print(f"  subset   | # ids | # {unit:9s}| # cameras")
        print("  ----------------------------------------")
        for name in ("train", "query", "gallery"):
            s = st[name]
            print(f"  {name:8s} | {s['ids']:5d} | {s[self.unit]:10d} | {s['cams']:9d}")
        print("  ----------------------------------------")

    def check_counts(self) -> None:
        """Counts that differ from the official statistics warn, unless the folder is synthetic."""
        if synthetic_manifest(self.official) is not None or not self.expected:
            return
        st = self.statistics()
        for name, (ids, n) in self.expected.items():
            got = (st[name]["ids"], st[name][self.unit])
            if got != (ids, n):
                warnings.warn(f"{self.name} {name}: loaded {got[0]} ids / {got[1]} {self.unit}, the "
                              f"official statistics are {ids} ids / {n} {self.unit} "
                              f"(folder {self.official})", stacklevel=3)
