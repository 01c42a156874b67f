"""Converter: official dataset layout -> the intermediate layout BUC reads (see datasets/base.py).

    python -m buc.convert --dataset market1501 --data-root DIR [--out DIR] [--link hard|symlink|copy]

Runs automatically on first use when the converted copy is absent or was made from another
folder or listing. The copy lives in ``${XDG_CACHE_HOME:-~/.cache}/buc/converted/<name>-<key>``
(never under the data root, which may be read-only). Frames are hard-linked by default (no extra
disk space; symbolic links where hard links are impossible: another file system, a read-only
mount). The copy is built in a temporary folder and renamed into place, so an interrupted
conversion never leaves a half-written layout that passes the integrity check.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from tqdm import tqdm

from .datasets.base import ReIDDataset, default_converted_dir, source_fingerprint
from .utils.serialization import write_json

LINKS = ("hard", "symlink", "copy")


def _place(src: Path, dst: Path, link: str, state: dict) -> None:
    if not src.is_file():
        raise FileNotFoundError(f"frame listed by the dataset is missing: {src}")
    if link == "hard" and not state.get("fallback"):
        try:
            os.link(src, dst)
            return
        except OSError as exc:   # another file system, or a read-only mount of the dataset
            state["fallback"] = True
            print(f"  hard links not possible here ({exc.strerror}); linking the frames symbolically "
                  "instead (no copy; the converted copy follows the official folder)")
    if link == "symlink" or state.get("fallback"):
        os.symlink(src.resolve(), dst)
    else:
        shutil.copyfile(src, dst)


def convert(cls: type[ReIDDataset], official, out, link: str = "hard", verbose: bool = True,
            progress: bool | None = None) -> Path:
    """Scans ``official`` with ``cls.scan`` and writes images/, meta.json, splits.json, origins.json."""
    if link not in LINKS:
        raise ValueError(f"unknown link mode {link!r}; valid: {', '.join(LINKS)}")
    official, out = Path(official), Path(out)
    cls.check_official(official)
    print(f"=> converting {cls.name} from {official} into {out} ({link} links)")
    splits = cls.scan(official)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        images = tmp / "images"
        images.mkdir()
        max_pid = max(t.pid for ts in splits.values() for t in ts)
        identities = [[{} for _ in range(cls.num_cams)] for _ in range(max_pid + 1)]
        lists = {"train": [], "gallery": [], "query": []}
        pids = {"train": set(), "gallery": set(), "query": set()}
        origins, state, vid = {}, {}, 0
        total = sum(len(t.frames) for ts in splits.values() for t in ts)
        show = verbose if progress is None else progress
        bar = tqdm(total=total, desc=f"convert {cls.name}", unit="frame", disable=not show, mininterval=2.0)
        for split in ("train", "gallery", "query"):    # the original's registration order
            for t in splits[split]:
                names = []
                for idx, src in enumerate(t.frames):
                    name = f"{t.pid:04d}_{t.cam:02d}_{vid:0{cls.vid_width}d}_{idx:04d}.jpg"
                    _place(Path(src), images / name, link, state)
                    origins[name] = os.path.relpath(src, official.parent)
                    names.append(name)
                bar.update(len(names))
                identities[t.pid][t.cam][str(vid)] = names
                lists[split].append(names)
                pids[split].add(t.pid)
                vid += 1
        bar.close()
        if pids["train"] & pids["gallery"]:
            raise ValueError(f"{official}: train and gallery share identities "
                             f"{sorted(pids['train'] & pids['gallery'])[:5]}...")
        meta = {"name": cls.name, "shot": "multiple", "num_cameras": cls.num_cams,
                "identities": identities, "query": lists["query"], "gallery": lists["gallery"],
                "converter": source_fingerprint(official)}
        write_json(meta, tmp / "meta.json", indent=None)
        write_json([{k: sorted(v) for k, v in pids.items()}], tmp / "splits.json")
        write_json(origins, tmp / "origins.json", indent=None)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    counts = {k: len(v) for k, v in lists.items()}
    print(f"=> converted {cls.name}: train {counts['train']}, query {counts['query']}, "
          f"gallery {counts['gallery']} {cls.unit}")
    return out


def main(argv=None) -> int:
    from . import datasets

    ap = argparse.ArgumentParser(prog="python -m buc.convert", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True, help=f"one of {', '.join(datasets.names(aliases=True))}")
    ap.add_argument("--data-root", required=True, help="folder holding the official dataset folder")
    ap.add_argument("--out", help="converted copy (default ${XDG_CACHE_HOME:-~/.cache}/buc/converted/"
                                  "<name>-<key of the official folder>, where train.py looks)")
    ap.add_argument("--link", choices=LINKS, default="hard")
    a = ap.parse_args(argv)
    try:
        cls = datasets.get_class(a.dataset)
        out = a.out or default_converted_dir(cls.name, Path(a.data_root) / cls.folder)
        convert(cls, Path(a.data_root) / cls.folder, out, link=a.link)
    except (KeyError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
