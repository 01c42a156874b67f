"""What the video dataset loaders share: the records, tracklet keys, statistics, count checks.

A dataset is three lists of ``(frame_paths, pid, camid)`` tuples, ``frame_paths`` being the
tuple of a tracklet's absolute frame paths in temporal order: ``train``, ``query`` and
``gallery``, each sorted (the original always works on ``sorted(dataset.train)``). Camera ids
are 0-based; junk tracklets (pid -1) are dropped; distractors (pid 0) stay in the gallery.
Training pids are the real ones: unsupervised training never reads them.

Every tracklet also has a *key*, the name it is known by in auxiliary-information files:
``<folder of its frames, relative to the dataset root>/<first frame>..<last frame>``, e.g.
``train/0001/0003/0001_C6_F0041_X30823.jpg..0001_C6_F0080_X31291.jpg``. Keys depend on file
names only, never on the order of a list.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from ..errors import DatasetError

log = logging.getLogger(__name__)

Tracklet = tuple[tuple[str, ...], int, int]


def tracklet_key(frame_paths, root) -> str:
    """The file-name key of a tracklet (see the module docstring)."""
    first, last = Path(frame_paths[0]), Path(frame_paths[-1])
    rel = PurePosixPath(first.parent.resolve().relative_to(Path(root).resolve()).as_posix())
    return f"{rel}/{first.name}..{last.name}"


class VideoDataset:
    """Base class of the loaders: subclasses set the class attributes and implement ``load``.

    name:     factory name (DATASETS.TARGET)
    folder:   the official folder name (DATASETS.NAME)
    official: {"train": (tracklets, ids), "query": tracklets, "gallery": tracklets}
    """

    name: str = ""
    folder: str = ""
    official: dict = {}
    layout_help: str = ""

    def __init__(self, root, verbose: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            parent = self.root.parent
            hint = "" if parent.is_dir() else f" (the data root {parent} itself does not exist)"
            raise DatasetError(
                f"dataset '{self.name}' not found: expected the folder {self.root}{hint}. "
                f"Put the official '{self.folder}' there ({self.layout_help}) and pass its "
                "parent as DATASETS.DIR"
            )
        self.root = self.root.resolve()
        self.synthetic = (self.root.parent / f"{self.root.name}.synthetic.json").exists()
        train, query, gallery = self.load(self.root)
        for split, items in (("train", train), ("query", query), ("gallery", gallery)):
            if not items:
                raise DatasetError(
                    f"{self.root}: the {split} split has no tracklet; expected the official "
                    f"layout ({self.layout_help})"
                )
        self.train = sorted(train)
        self.query = sorted(query)
        self.gallery = sorted(gallery)
        if verbose:
            log.info(self.statistics())
        self.check_counts()

    def load(self, root: Path):
        raise NotImplementedError

    def key(self, item) -> str:
        return tracklet_key(item[0], self.root)

    def keys(self, items) -> list[str]:
        return [self.key(it) for it in items]

    # ----------------------------------------------------------------------------- statistics
    @staticmethod
    def info(items) -> tuple[int, int, int, int]:
        """(ids, tracklets, frames, cameras) of a split."""
        return (
            len({p for _, p, _ in items}),
            len(items),
            sum(len(f) for f, _, _ in items),
            len({c for _, _, c in items}),
        )

    def extra_rows(self) -> list[tuple[str, tuple]]:
        return []

    def statistics(self) -> str:
        rows = [
            f"=> {self.folder} loaded from {self.root}" + (" (synthetic)" if self.synthetic else ""),
            "  -------------------------------------------------------",
            "  subset       | # ids | # tracklets | # frames | # cameras",
            "  -------------------------------------------------------",
        ]
        entries = (
            [("train", self.info(self.train))]
            + self.extra_rows()
            + [("query", self.info(self.query)), ("gallery", self.info(self.gallery))]
        )
        for split, (ids, n, frames, cams) in entries:
            rows.append(f"  {split:12s} | {ids:5d} | {n:11d} | {frames:8d} | {cams:9d}")
        lengths = [len(f) for f, _, _ in self.train + self.query + self.gallery]
        rows.append("  -------------------------------------------------------")
        rows.append(
            f"  frames per tracklet: {min(lengths)} ~ {max(lengths)}, average "
            f"{sum(lengths) / len(lengths):.1f}"
        )
        return "\n".join(rows)

    def official_found(self) -> dict:
        return {
            "train": (len(self.train), self.info(self.train)[0]),
            "query": len(self.query),
            "gallery": len(self.gallery),
        }

    def check_counts(self) -> list[str]:
        """Warns where the counts differ from the official statistics (silent when synthetic)."""
        if self.synthetic or not self.official:
            return []
        found = self.official_found()
        diffs = []
        for split, want in self.official.items():
            have = found[split]
            if have != want:
                if isinstance(want, tuple):
                    diffs.append(
                        f"{split}: {have[0]} tracklets / {have[1]} ids, official {want[0]} / {want[1]}"
                    )
                else:
                    diffs.append(f"{split}: {have} tracklets, official {want}")
        for d in diffs:
            log.warning(
                f"WARNING: {self.folder} counts differ from the official statistics: {d} "
                "(an incomplete or modified copy?)"
            )
        return diffs


def require(path: Path, what: str, layout_help: str) -> None:
    if not path.exists():
        raise DatasetError(f"{path} is missing: {what} ({layout_help})")
