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
from .plan import World
from .render import DOMAINS
from .video_layouts import write_dukevideo, write_mars

__all__ = ["generate", "generate_benchmark", "LAYOUTS", "FOLDERS", "DEFAULT_IDS", "DEFAULT_TEST_IDS",
           "read_manifest"]

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


def _arguments(layout, seed, domain, ids, test_ids, cams) -> dict:
    if layout not in _SPECS:
        raise ValueError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; valid domains: {', '.join(sorted(DOMAINS))}")
    _, _, default_cams, max_cams = _SPECS[layout]
    args = {
        "layout": layout, "domain": domain, "seed": _check_int("seed", seed, 0, 2**32 - 1),
        "ids": _check_int("ids", DEFAULT_IDS if ids is None else ids, 1, 2000),
        "test_ids": _check_int("test_ids", DEFAULT_TEST_IDS if test_ids is None else test_ids, 1, 2000),
        "cams": _check_int("cams", default_cams if cams is None else cams, 2, max_cams),
    }
    if layout == "cuhk03" and args["ids"] + args["test_ids"] < args["cams"]:
        raise ValueError("cuhk03 needs at least one person per camera pair: ids + test_ids >= cams")
    return args


def generate(layout: str, root, *, seed: int = 0, domain: str = "a", ids: int | None = None,
             test_ids: int | None = None, cams: int | None = None, overwrite: bool = False) -> Path:
    """Write one synthetic dataset as root/<real folder name> and return that folder.

    ids / test_ids: train / test identities (default 50 / 60); cams: cameras (camera pairs for
    cuhk03). Refuses a non-empty existing folder unless overwrite=True, and never replaces a folder
    that this generator did not write. A manifest <folder>.synthetic.json is written beside it.
    """
    args = _arguments(layout, seed, domain, ids, test_ids, cams)
    root = Path(root)
    folder, writer, _, _ = _SPECS[layout]
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
        stream = [args["seed"], 1 + sorted(DOMAINS).index(domain), 1 + LAYOUTS.index(layout)]
        rng = np.random.default_rng(stream)
        n_cams = args["cams"] * 2 if layout == "cuhk03" else args["cams"]
        world = World(rng, domain, n_cams, vehicles=(layout == "veri776"))
        stats = writer(tmp, world, args["ids"], args["test_ids"])
        if target.exists():
            shutil.rmtree(target)
        (tmp / folder).rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    record = {"generator": "common_eval.synthetic", "version": VERSION, "folder": folder, **args,
              "stats": stats}
    manifest.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return target


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
            have = read_manifest(droot, layout)
            want = _arguments(layout, seed, domain, None, None, None)
            if (have and have.get("version") == VERSION and all(have.get(k) == v for k, v in want.items())
                    and (droot / FOLDERS[layout]).is_dir()):
                out[domain][layout] = droot / FOLDERS[layout]
                continue
            out[domain][layout] = generate(layout, droot, seed=seed, domain=domain, overwrite=overwrite)
    return out
