"""CUHK03 official release -> the PUL author's folders (new protocol, detected boxes).

    python -m pul.convert_cuhk03 DATA_ROOT/CUHK03 [--out DIR] [--protocol detected|labeled] [--overwrite]

Reads ``CUHK03/cuhk03_release/cuhk-03.mat`` (MATLAB v7.3, i.e. HDF5, through h5py) and the
new-protocol split ``CUHK03/cuhk03_new_protocol_config_detected.mat`` (Zhong et al., CVPR 2017,
the split the PUL author points to in his issue #2) and writes, beside them (or into ``--out DIR``),
what the PUL scripts read:

    bounding_box_train/  bbox_train/   the 7,365 train images (the PUL script reads the first,
                                       the baseline and semi-supervised scripts the second)
    bbox_test/  query/                 gallery (5,332) and query (1,400) images
    train.list 50train.list 25train.list query.list test.list

The image ``filelist[i] = {pair}_{pid:03d}_{view}_{col:02d}.png`` of the split file is cell
``(pid, col)`` of camera pair ``pair`` in cuhk-03.mat and becomes ``{label:04d}_c{view}_f{col:02d}.jpg``
with ``label = labels[i]`` (persons numbered 1..1467 pair by pair), exactly the names of the
author's lists. train.list labels are 0..766 in ascending person order; in 50train.list (25train.list)
only the 50 (25) lowest train persons keep their label, every other line has -1.

The CUHK03 loader never writes under the data root: when a data root holds only the official
release, it converts into a cache folder (``cache_folder``: ``${XDG_CACHE_HOME:-~/.cache}/pul/cuhk03/KEY``,
KEY naming the release files' path, size and modification time) and reuses it while they are unchanged.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import PULError

RELEASE = Path("cuhk03_release") / "cuhk-03.mat"
SPLIT = "cuhk03_new_protocol_config_{}.mat"
OUTPUT_DIRS = ("bounding_box_train", "bbox_train", "bbox_test", "query")
LISTS = ("train.list", "50train.list", "25train.list", "query.list", "test.list")
_NAME = re.compile(r"^(\d+)_(\d+)_(\d)_(\d+)\.png$")


def is_converted(folder) -> bool:
    folder = Path(folder)
    return ((folder / "bounding_box_train").is_dir() or (folder / "bbox_train").is_dir()) and all(
        (folder / d).is_dir() for d in ("bbox_test", "query"))


def conversion_inputs(folder, protocol: str = "detected") -> tuple[Path, Path]:
    folder = Path(folder)
    return folder / RELEASE, folder / SPLIT.format(protocol)


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pul" / "cuhk03"


def cache_folder(folder, protocol: str = "detected") -> Path:
    """Where the loader converts the release of ``folder``: one cache folder per release (path,
    size and modification time of both input files), so a changed release is converted again."""
    key = []
    for p in conversion_inputs(folder, protocol):
        st = p.stat()
        key.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    digest = hashlib.sha256(json.dumps([protocol, key]).encode()).hexdigest()[:16]
    return cache_root() / f"{protocol}-{digest}"


def _read_split(path: Path) -> dict:
    from scipy.io import loadmat
    try:
        m = loadmat(str(path))
    except Exception as exc:  # scipy raises several types on a broken file
        raise PULError(f"cannot read the CUHK03 split file '{path}': {exc}") from exc
    missing = [k for k in ("train_idx", "query_idx", "gallery_idx", "labels", "filelist") if k not in m]
    if missing:
        raise PULError(f"'{path}' is not a CUHK03 new-protocol split file (no {', '.join(missing)})")

    def idx(k):
        return np.asarray(m[k], dtype=np.int64).ravel() - 1  # MATLAB indices are 1-based

    files = [str(np.asarray(x).ravel()[0]) for x in np.asarray(m["filelist"]).ravel()]
    return {"train": idx("train_idx"), "query": idx("query_idx"), "gallery": idx("gallery_idx"),
            "labels": np.asarray(m["labels"], dtype=np.int64).ravel(), "filelist": files}


class _Release:
    """Lazy reader of cuhk-03.mat: image (pair, pid, col) of the detected or labeled boxes."""

    def __init__(self, path: Path, protocol: str):
        import h5py
        try:
            self.f = h5py.File(path, "r")
        except OSError as exc:
            raise PULError(f"cannot open '{path}' with h5py ({exc}); cuhk-03.mat must be the "
                           "official MATLAB v7.3 file of the CUHK03 release") from exc
        if protocol not in self.f:
            raise PULError(f"'{path}' has no '{protocol}' variable; is it the official cuhk-03.mat?")
        self.pairs = [self.f[r] for r in np.asarray(self.f[protocol]).ravel()]
        self.path = path

    def image(self, pair: int, pid: int, col: int) -> np.ndarray:
        cells = self.pairs[pair - 1]           # h5py shape (10, n_pids) = MATLAB (n_pids, 10)
        if not (1 <= col <= cells.shape[0] and 1 <= pid <= cells.shape[1]):
            raise PULError(f"{self.path}: no cell (pair {pair}, person {pid}, column {col})")
        ds = self.f[cells[col - 1, pid - 1]]
        if ds.attrs.get("MATLAB_empty", 0) or ds.ndim != 3:
            raise PULError(f"{self.path}: cell (pair {pair}, person {pid}, column {col}) is empty but "
                           "the split file lists it")
        return np.ascontiguousarray(np.asarray(ds).T).astype(np.uint8)  # (H, W, 3)

    def close(self):
        self.f.close()


def convert_cuhk03(folder, protocol: str = "detected", overwrite: bool = False, quality: int = 95,
                   progress: bool = True, out=None) -> Path:
    """Writes the author's folders and lists into ``out`` (default: ``folder``, the CUHK03/ folder
    holding the release); returns it. Nothing is written into ``folder`` when ``out`` is elsewhere."""
    from PIL import Image
    from tqdm import tqdm

    folder = Path(folder)
    out = Path(out) if out is not None else folder
    release, split = conversion_inputs(folder, protocol)
    for p in (release, split):
        if not p.is_file():
            raise PULError(f"CUHK03 conversion needs '{p}' (official release files: "
                           f"{folder}/{RELEASE} and {folder}/{SPLIT.format(protocol)})")
    existing = [d for d in OUTPUT_DIRS if (out / d).exists()]
    if existing and not overwrite:
        raise PULError(f"{out} already holds {', '.join(existing)}; pass overwrite=True "
                       "(--overwrite) to convert again")
    s = _read_split(split)
    out.mkdir(parents=True, exist_ok=True)
    rel = _Release(release, protocol)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out))
    try:
        names = {}
        for d in ("bounding_box_train", "bbox_test", "query"):
            (tmp / d).mkdir()
        jobs = [(i, sub) for sub, key in (("bounding_box_train", "train"), ("query", "query"),
                                          ("bbox_test", "gallery")) for i in s[key]]
        for i, sub in tqdm(jobs, desc="CUHK03 -> PUL folders", disable=not progress, unit="img"):
            m = _NAME.match(s["filelist"][i])
            if not m:
                raise PULError(f"{split}: unexpected file name {s['filelist'][i]!r} in filelist")
            pair, pid, view, col = (int(g) for g in m.groups())
            name = f"{int(s['labels'][i]):04d}_c{view}_f{col:02d}.jpg"
            Image.fromarray(rel.image(pair, pid, col)).save(tmp / sub / name, quality=quality)
            names.setdefault(sub, []).append(name)
        # bbox_train/ = the same train images (hard links where the file system allows)
        (tmp / "bbox_train").mkdir()
        for name in names["bounding_box_train"]:
            src, dst = tmp / "bounding_box_train" / name, tmp / "bbox_train" / name
            try:
                os.link(src, dst)
            except OSError:
                shutil.copyfile(src, dst)
        train = sorted(names["bounding_box_train"])
        persons = sorted({int(n[:4]) for n in train})
        label = {p: k for k, p in enumerate(persons)}
        for fname, known in (("train.list", len(persons)), ("50train.list", 50), ("25train.list", 25)):
            lines = []
            for n in train:
                lab = label[int(n[:4])]
                lines.append(f"{n} {lab if lab < known else -1}\n")
            (tmp / fname).write_text("".join(lines))
        (tmp / "query.list").write_text("".join(n + "\n" for n in sorted(names["query"])))
        (tmp / "test.list").write_text("".join(n + "\n" for n in sorted(names["bbox_test"])))
        for d in OUTPUT_DIRS:
            if (out / d).exists():
                shutil.rmtree(out / d)
            os.replace(tmp / d, out / d)
        for fname in LISTS:
            os.replace(tmp / fname, out / fname)
    finally:
        rel.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pul.convert_cuhk03", description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="the CUHK03/ folder (holds cuhk03_release/ and the split .mat files)")
    ap.add_argument("--protocol", choices=("detected", "labeled"), default="detected",
                    help="which boxes (PUL's lists are the detected ones)")
    ap.add_argument("--out", help="write the folders and lists here instead of beside the release")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--quality", type=int, default=95, help="JPEG quality of the written images")
    a = ap.parse_args(argv)
    try:
        out = convert_cuhk03(a.folder, a.protocol, a.overwrite, a.quality, out=a.out)
    except PULError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(OUTPUT_DIRS)} and {', '.join(LISTS)} into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
