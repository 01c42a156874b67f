"""What every dataset loader shares: finding the folder, the (path, pid, camid) records, statistics.

A dataset is three lists of ``(absolute_path, pid, camid)`` tuples, each sorted by path:
``train``, ``query`` and ``gallery``. Camera ids are 0-based; junk images (pid -1) are dropped
from every split, Market's distractors (pid 0) stay in the gallery. Training pids are the real
ones: unsupervised training never reads them (they only feed the printed statistics).

3C itself works in raw ``glob`` order, which depends on the file system; sorting by path makes a
run reproducible on any machine (a documented deviation: it changes nothing but the order).
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

    name:     registry name (``--dataset``)
    folder:   the official folder name under the data root (``--root-dir``)
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
        if self.info(self.train)[0] == 1:
            log.warning(f"WARNING: the training split of {self.root} holds a single identity: a re-ID "
                        "model cannot learn to tell people apart from it (an incomplete copy?)")

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
    """The official folder under the data root, ``<root-dir>/<folder>`` as 3C has it; a
    DatasetError naming it when it does not exist."""
    candidate = data_dir / folder
    if candidate.is_dir():
        return candidate.resolve()
    hint = "" if data_dir.is_dir() else f" (the data root {data_dir} itself does not exist)"
    raise DatasetError(f"dataset '{name}' not found: expected the folder {candidate}{hint}. "
                       f"Put the official '{folder}' there ({layout_help}) and pass its parent as "
                       f"--root-dir.")


def require_dirs(root: Path, names) -> None:
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        folders = ", ".join(m + "/" for m in missing)
        raise DatasetError(f"{root} is not a complete dataset folder: missing {folders}")


def parse_market_style(directory: Path, pattern: str, num_cams: int,
                       max_pid: int | None = None) -> list[Item]:
    """Every ``*.jpg`` of a folder whose name starts with ``<pid>_c<cam>``; pid -1 dropped.

    As the original's ``glob('*.jpg')`` + ``re.search``: names ending in ``.jpg.jpg`` (found in some
    Market copies) are read like any other; other files (``Thumbs.db``, lists) are ignored. The
    original searches the whole path and crashes (``int()``) on a name such as ``00-8_c1...``;
    here only the file name is searched and such a name is a DatasetError that names the file.

    pattern: the original's regex (two groups: pid, camera); cameras must be 1..num_cams and pids
    at most ``max_pid`` (the original's asserts).
    """
    regex = re.compile(pattern)
    items = []
    for path in directory.glob("*.jpg"):
        m = regex.search(path.name)
        try:
            pid, cam = int(m.group(1)), int(m.group(2))
        except (AttributeError, ValueError):   # no match, or e.g. '00-8_c1...' (the original: int() crash)
            raise DatasetError(f"{path}: file name does not follow the naming rule "
                               f"'<pid>_c<camera>...' of {directory.parent.name} (pid and camera must be "
                               "integers, -1 for junk); rename or remove the file") from None
        if pid == -1:
            continue  # junk
        if not 1 <= cam <= num_cams:
            raise DatasetError(f"{path}: camera {cam} is outside 1..{num_cams}")
        if max_pid is not None and not 0 <= pid <= max_pid:
            raise DatasetError(f"{path}: identity {pid} is outside 0..{max_pid}")
        items.append((str(path.resolve()), pid, cam - 1))
    return items
