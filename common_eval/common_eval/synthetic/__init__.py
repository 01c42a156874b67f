"""Synthetic re-ID benchmark in the real dataset layouts (see common_eval/README.md, "Synthetic benchmark").

    from common_eval.synthetic import generate, generate_benchmark, LAYOUTS
    path = generate("market1501", "data/synthetic/a", seed=0, domain="a")
    generate_benchmark("data/synthetic", seed=0)   # data/synthetic/{a,b}/<every layout>

Drawn people (vehicles for veri776) on 128x64 JPEGs; identity look stronger than camera look, as
measured when the benchmark was calibrated. Byte-identical output for the same arguments.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .cuhk03 import write_cuhk03
from .image_layouts import write_duke, write_market, write_msmt17, write_veri
from .plan import Shape, World
from .render import DOMAINS
from .video_layouts import write_dukevideo, write_mars

__all__ = ["generate", "generate_benchmark", "plan_stats", "LAYOUTS", "FOLDERS", "DEFAULT_IDS",
           "DEFAULT_TEST_IDS", "REAL_COUNTS", "is_current", "read_manifest"]

VERSION = 1
DEFAULT_IDS = 50
DEFAULT_TEST_IDS = 60

# layout: (dataset folder, writer, default cameras, most cameras the naming rule allows)
_SPECS = {
    "market1501": ("Market-1501-v15.09.15", write_market, 6, 9),
    "dukemtmcreid": ("DukeMTMC-reID", write_duke, 8, 9),
    "msmt17": ("MSMT17_V1", write_msmt17, 15, 99),
    "cuhk03": ("CUHK03", write_cuhk03, 5, 9),          # cameras = camera pairs (2 views each)
    "veri776": ("VeRi", write_veri, 20, 999),
    "mars": ("MARS", write_mars, 6, 9),
    "dukevideo": ("DukeMTMC-VideoReID", write_dukevideo, 8, 9),
}
LAYOUTS = tuple(_SPECS)
FOLDERS = {k: v[0] for k, v in _SPECS.items()}

# The real datasets' counts as their loaders report them (images; tracklets for mars and
# dukevideo; msmt17's train includes list_val; cuhk03: the new protocol, detected; cams = camera
# pairs for cuhk03), and the real frame counts of the video sets. counts="real" draws identities
# in these numbers and shots per identity (REAL_SHAPES) so that the splits come out within ~15 %
# of them (the manifest records what was written). Video tracklets keep the benchmark's 6-16
# frames (MARS has 59 on average, DukeMTMC-VideoReID 168): the frame-dependent costs scale with
# the frame count, the clustering and ranking with the tracklet count.
REAL_COUNTS = {
    "market1501": {"ids": 751, "test_ids": 750, "cams": 6, "train": 12936, "query": 3368, "gallery": 15913},
    "dukemtmcreid": {"ids": 702, "test_ids": 702, "cams": 8, "train": 16522, "query": 2228, "gallery": 17661},
    "msmt17": {"ids": 1041, "test_ids": 3060, "cams": 15, "train": 32621, "query": 11659, "gallery": 82161},
    "cuhk03": {"ids": 767, "test_ids": 700, "cams": 5, "train": 7365, "query": 1400, "gallery": 5332},
    "veri776": {"ids": 575, "test_ids": 200, "cams": 20, "train": 37778, "query": 1678, "gallery": 11579},
    "mars": {"ids": 625, "test_ids": 626, "cams": 6, "train": 8298, "query": 1980, "gallery": 9330,
             "frames": 1191003},
    "dukevideo": {"ids": 702, "test_ids": 702, "cams": 8, "train": 2196, "query": 702, "gallery": 2636,
                  "frames": 815420},
}
REAL_SHAPES = {
    "market1501": Shape(cams_per_id=(3, 6), per_cam=(1, 7), test_per_cam=(2, 8), distractors=0.21, junk=0.29),
    "dukemtmcreid": Shape(cams_per_id=(2, 4), per_cam=(3, 13), distractors=0.58),
    "msmt17": Shape(cams_per_id=(2, 6), per_cam=(3, 13)),
    "cuhk03": Shape(per_cam=(4, 5)),
    "veri776": Shape(cams_per_id=(6, 11), per_cam=(3, 13)),
    "mars": Shape(cams_per_id=(2, 5), tracklets_per_cam=(2, 6), max_query=99, distractors=0.25, junk=0.10),
    "dukevideo": Shape(cams_per_id=(2, 5), tracklets_per_cam=(1, 1), distractors=0.58),
}
COUNTS = ("benchmark", "real")


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return int(value)


def _manifest_path(root: Path, layout: str) -> Path:
    return root / f"{FOLDERS[layout]}.synthetic.json"


def read_manifest(root, layout: str) -> dict | None:
    """The generator's record written beside a dataset folder (arguments and split statistics)."""
    p = _manifest_path(Path(root), layout)
    return json.loads(p.read_text()) if p.exists() else None


def _arguments(layout, seed, domain, ids, test_ids, cams, counts="benchmark") -> dict:
    if layout not in _SPECS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    if counts not in COUNTS:
        raise ValueError(f"unknown counts {counts!r}; valid: {', '.join(COUNTS)}")
    if counts == "real":
        if ids is not None or test_ids is not None or cams is not None:
            raise ValueError("counts='real' sets the identities and cameras itself: drop ids/test_ids/cams")
        real = REAL_COUNTS[layout]
        ids, test_ids, cams = real["ids"], real["test_ids"], real["cams"]
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; valid domains: {', '.join(sorted(DOMAINS))}")
    _, _, default_cams, max_cams = _SPECS[layout]
    args = {
        "layout": layout, "domain": domain, "seed": _check_int("seed", seed, 0, 2**32 - 1),
        "ids": _check_int("ids", DEFAULT_IDS if ids is None else ids, 1, 2000),
        "test_ids": _check_int("test_ids", DEFAULT_TEST_IDS if test_ids is None else test_ids, 1, 5000),
        "cams": _check_int("cams", default_cams if cams is None else cams, 2, max_cams),
    }
    if counts != "benchmark":   # the benchmark's manifests stay as they were
        args["counts"] = counts
    if layout == "cuhk03" and args["ids"] + args["test_ids"] < args["cams"]:
        raise ValueError("cuhk03 needs at least one person per camera pair: ids + test_ids >= cams")
    return args


def _write(layout, out: Path, args: dict, dry: bool = False) -> dict:
    """Plan and write the dataset folder under out; returns the split statistics."""
    stream = [args["seed"], 1 + sorted(DOMAINS).index(args["domain"]), 1 + LAYOUTS.index(layout)]
    rng = np.random.default_rng(stream)
    n_cams = args["cams"] * 2 if layout == "cuhk03" else args["cams"]
    shape = REAL_SHAPES[layout] if args.get("counts") == "real" else Shape()
    world = World(rng, args["domain"], n_cams, vehicles=(layout == "veri776"), shape=shape, dry=dry)
    return _SPECS[layout][1](out, world, args["ids"], args["test_ids"])


def plan_stats(layout: str, *, seed: int = 0, domain: str = "a", counts: str = "benchmark") -> dict:
    """The split statistics generate() would record, without drawing an image (list and .mat
    files are written to a temporary folder and removed)."""
    args = _arguments(layout, seed, domain, None, None, None, counts)
    with tempfile.TemporaryDirectory() as tmp:
        return _write(layout, Path(tmp), args, dry=True)


def generate(layout: str, root, *, seed: int = 0, domain: str = "a", ids: int | None = None,
             test_ids: int | None = None, cams: int | None = None, overwrite: bool = False,
             counts: str = "benchmark") -> Path:
    """Write one synthetic dataset as root/<real folder name> and return that folder.

    ids / test_ids: train / test identities (default 50 / 60); cams: cameras (camera pairs for
    cuhk03); counts="real": the real dataset's identities, cameras and about its image (tracklet)
    counts (REAL_COUNTS; ids/test_ids/cams must then be None). Refuses a non-empty existing folder
    unless overwrite=True, and never replaces a folder that this generator did not write. A
    manifest <folder>.synthetic.json is written beside it.
    """
    args = _arguments(layout, seed, domain, ids, test_ids, cams, counts)
    root = Path(root)
    folder = _SPECS[layout][0]
    target, manifest = root / folder, _manifest_path(root, layout)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.exists() and any(target.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{target} already exists and is not empty; "
                                  "use overwrite=True (CLI: --overwrite) to replace it")
        if not manifest.exists():
            raise FileExistsError(f"refusing to replace {target}: there is no {manifest.name} beside "
                                  "it, so it was not written by common_eval.synthetic")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.tmp-", dir=root))
    try:
        stats = _write(layout, tmp, args)
        if target.exists():
            shutil.rmtree(target)
        (tmp / folder).rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record = {"generator": "common_eval.synthetic", "version": VERSION, "folder": folder, **args,
              "stats": stats}
    manifest.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return target


def is_current(root, layout: str, *, seed: int = 0, domain: str = "a", counts: str = "benchmark") -> bool:
    """True when root holds the dataset generate() would write with these arguments (its
    manifest matches), so it can be reused as it is."""
    have = read_manifest(root, layout)
    want = _arguments(layout, seed, domain, None, None, None, counts)
    return bool(have and have.get("version") == VERSION and all(have.get(k) == v for k, v in want.items())
                and have.get("counts", "benchmark") == counts and (Path(root) / FOLDERS[layout]).is_dir())


def generate_benchmark(root, *, seed: int = 0, overwrite: bool = False) -> dict:
    """Every layout at default size in domain a (root/a) and domain b (root/b).

    Datasets already there with the same arguments (per their manifest) are kept as they are.
    Returns {"a": {layout: Path}, "b": {layout: Path}}.
    """
    root = Path(root)
    out: dict = {}
    for domain in sorted(DOMAINS):
        out[domain] = {}
        for layout in LAYOUTS:
            droot = root / domain
            if is_current(droot, layout, seed=seed, domain=domain):
                out[domain][layout] = droot / FOLDERS[layout]
                continue
            out[domain][layout] = generate(layout, droot, seed=seed, domain=domain, overwrite=overwrite)
    return out
