"""MSMT17 (Wei et al., CVPR 2018): the official ``MSMT17_V1/`` release.

Official layout: ``train/<pid>/<name>``, ``test/<pid>/<name>`` and ``list_{train,val,query,
gallery}.txt`` whose lines are ``<pid>/<name> <pid>``; names are ``PPPP_III_CC_DDMMperiod_NNNN_N
.jpg`` with the camera (1..15) in the third field. As in SpCL's loader, train = list_train +
list_val (32,621 images / 1,041 ids); query 11,659; gallery 82,161. Train and test pids are both
numbered from 0 (they are different people; only the test ones are compared with each other).

3C's own loader needs a copy converted to Market-style folders (``bounding_box_train/``,
``query/``, ``bounding_box_test/``, names ``<pid>_c<cam>...``) and ships no converter. This
loader reads the official release directly (the conversion spec 1.1 describes: pid from the list,
camera from the third field of the name), which gives the same (image, pid, camera) records; an
already converted Market-style folder is read as well.

List lines are split on any white space (CRLF endings, trailing blanks and empty lines are
harmless), as SpCL's reader splits ``'<path> <pid>'``; a malformed line is a DatasetError naming
the list and line.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ReIDImageDataset, parse_market_style, require_dirs

LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
MARKET_STYLE = ("bounding_box_train", "query", "bounding_box_test")


def read_list(root: Path, list_name: str, image_dir: str):
    items = []
    path = root / list_name
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{path}:{n}: expected '<pid>/<image name> <pid>', got {line!r}")
        rel = parts[0]
        try:
            pid = int(parts[1])
        except ValueError:
            raise DatasetError(f"{path}:{n}: the identity {parts[1]!r} is not an integer "
                               "('<pid>/<image name> <pid>')") from None
        fields = Path(rel).name.split("_")
        if len(fields) < 3 or not fields[2].isdigit():
            raise DatasetError(f"{path}:{n}: image name {rel!r} lacks the camera field "
                               "(PPPP_III_CC_...jpg)")
        cam = int(fields[2])
        if not 1 <= cam <= 15:
            raise DatasetError(f"{path}:{n}: camera {cam} is outside 1..15")
        image = root / image_dir / rel
        if not image.is_file():
            raise DatasetError(f"{path}:{n}: listed image {image} does not exist")
        items.append((str(image.resolve()), pid, cam - 1))
    return items


class MSMT17(ReIDImageDataset):
    name = "msmt17"
    folder = "MSMT17_V1"
    official = {"train": (32621, 1041), "query": 11659, "gallery": 82161}
    layout_help = ("train/, test/ and list_train.txt, list_val.txt, list_query.txt, "
                   "list_gallery.txt; 32,621 / 11,659 / 82,161 images")

    def load(self, root: Path):
        if all((root / name).is_file() for name in LISTS):
            require_dirs(root, ("train", "test"))
            train = read_list(root, "list_train.txt", "train") + read_list(root, "list_val.txt", "train")
            query = read_list(root, "list_query.txt", "test")
            return train, query, read_list(root, "list_gallery.txt", "test")
        if all((root / d).is_dir() for d in MARKET_STYLE):
            return tuple(parse_market_style(root / d, r"([-\d]+)_c(\d+)", 15) for d in MARKET_STYLE)
        missing = [n for n in LISTS if not (root / n).is_file()]
        raise DatasetError(f"{root} is neither the official MSMT17_V1 release (missing "
                           f"{', '.join(missing)}) nor a Market-style conversion "
                           f"({'/, '.join(MARKET_STYLE)}/)")
