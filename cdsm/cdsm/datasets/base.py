"""What every dataset loader shares: finding the folder, the (path, pid, camid) records, statistics.

A dataset is three lists of ``(absolute_path, pid, camid)`` tuples, each sorted by path:
``train``, ``query`` and ``gallery``. Camera ids are 0-based; junk images (pid -1) are dropped
from every split, Market's distractors (pid 0) stay in the gallery. Training pids are the real
ones: unsupervised training never reads them (they only feed the printed statistics).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

from ..errors import DatasetError

log = logging.getLogger(__name__)

Item = tuple[str, int, int]


class ReIDImageDataset:
    """Base class of the loaders: subclasses set the class attributes and implement ``load``.

    name:     registry name (``-d``), also the original's per-dataset sub-folder
    folder:   the official folder name under the data root
    official: {"train": (images, ids), "query": images, "gallery": images}, the published counts
    """

    name: str = ""
    folder: str = ""
    official: dict = {}
    layout_help: str = ""

    def __init__(self, data_dir, verbose: bool = True):
        self.data_dir = Path(data_dir)
        self.root = find_dataset_folder(self.data_dir, self.name, self.folder, self.layout_help)
        self.synthetic = (self.root.parent / f"{self.folder}.synthetic.json").exists()
        train, query, gallery = self.load(self.root)
        for split, items in (("train", train), ("query", query), ("gallery", gallery)):
            if not items:
                raise DatasetError(f"{self.root}: the {split} split has no image; expected the official "
                                   f"layout ({self.layout_help})")
        self.train = sorted(train)
        self.query = sorted(query)
        self.gallery = sorted(gallery)
        if verbose:
            log.info(self.statistics())
        self.check_counts()

    def load(self, root: Path) -> tuple[list[Item], list[Item], list[Item]]:
        raise NotImplementedError

    # ----------------------------------------------------------------------------- statistics
    @staticmethod
    def info(items: list[Item]) -> tuple[int, int, int]:
        """(number of ids, number of images, number of cameras) of a split."""
        return len({p for _, p, _ in items}), len(items), len({c for _, _, c in items})

    def statistics(self) -> str:
        rows = [f"=> {self.folder} loaded from {self.root}" + (" (synthetic)" if self.synthetic else ""),
                "  ----------------------------------------",
                "  subset   | # ids | # images | # cameras",
                "  ----------------------------------------"]
        for split in ("train", "query", "gallery"):
            ids, imgs, cams = self.info(getattr(self, split))
            rows.append(f"  {split:8s} | {ids:5d} | {imgs:8d} | {cams:9d}")
        rows.append("  ----------------------------------------")
        return "\n".join(rows)

    def check_counts(self) -> list[str]:
        """Warns (once per difference) where the counts differ from the official statistics.

        Silent for synthetic folders (common_eval.synthetic writes a manifest beside them).
        Returns the differences found.
        """
        if self.synthetic or not self.official:
            return []
        found = {"train": (len(self.train), self.info(self.train)[0]),
                 "query": len(self.query), "gallery": len(self.gallery)}
        diffs = []
        for split, want in self.official.items():
            have = found[split]
            if have != want:
                if isinstance(want, tuple):
                    diffs.append(f"{split}: {have[0]} images / {have[1]} ids, official {want[0]} / {want[1]}")
                else:
                    diffs.append(f"{split}: {have} images, official {want}")
        for d in diffs:
            log.warning(f"WARNING: {self.folder} counts differ from the official statistics: {d} "
                        f"(an incomplete or modified copy?)")
        return diffs


def find_dataset_folder(data_dir: Path, name: str, folder: str, layout_help: str = "") -> Path:
    """The official folder under the data root: ``<data_dir>/<folder>`` or the original CDSM
    nesting ``<data_dir>/<name>/<folder>``; a DatasetError naming both when neither exists."""
    candidates = [data_dir / folder, data_dir / name / folder]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    where = " or ".join(str(c) for c in candidates)
    hint = "" if data_dir.is_dir() else f" (the data root {data_dir} itself does not exist)"
    raise DatasetError(f"dataset '{name}' not found: expected the folder {where}{hint}. "
                       f"Put the official '{folder}' there ({layout_help}) and pass its parent as "
                       f"--data-dir.")


def require_dirs(root: Path, names) -> None:
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        folders = ", ".join(m + "/" for m in missing)
        raise DatasetError(f"{root} is not a complete dataset folder: missing {folders}")


def parse_market_style(directory: Path, pattern: str, num_cams: int) -> list[Item]:
    """Every ``*.jpg`` of a folder whose name starts with ``<pid>_c<cam>``; pid -1 dropped.

    pattern: the original's regex (two groups: pid, camera); cameras must be 1..num_cams.
    As the original's ``glob('*.jpg')``, names ending in ``.jpg.jpg`` (24 of Market's query and
    test images in some copies, e.g. ``1488_c1s6_023021_00.jpg.jpg``) are read like the others;
    other files (``Thumbs.db``) are ignored. A name whose pid field is not a number (the regex
    ``[-0-9]+`` also matches ``00-8``) names the file instead of the original's int() crash.
    """
    regex = re.compile(pattern)
    items = []
    for path in directory.glob("*.jpg"):
        m = regex.search(path.name)
        if m is None:
            raise DatasetError(f"{path}: file name does not follow the naming rule "
                               f"'<pid>_c<camera>...' of {directory.parent.name}")
        try:
            pid, cam = int(m.group(1)), int(m.group(2))
        except ValueError:
            raise DatasetError(f"{path}: file name does not follow the naming rule '<pid>_c<camera>...' "
                               f"of {directory.parent.name}: the pid field {m.group(1)!r} is not a number; "
                               "rename or remove the file") from None
        if pid == -1:
            continue  # junk
        if not 1 <= cam <= num_cams:
            raise DatasetError(f"{path}: camera {cam} is outside 1..{num_cams}")
        items.append((str(path.resolve()), pid, cam - 1))
    return items
