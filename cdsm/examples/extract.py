"""Features of a folder of images from a trained CDSM checkpoint (``cdsm.FeatureExtractor``).

    python examples/extract.py --checkpoint logs/market/model_best.pth.tar --images crops/ --out feats.npy

Writes feats.npy (float32, N x D, L2-normalised rows: what examples/test.py ranks) and, beside
it, feats.txt: the images' paths relative to --images, one per line, in the rows' order (every
.jpg/.jpeg/.png/.bmp under the folder, recursively, sorted by relative path; hidden files
skipped). Both files are written atomically. Model, input size and normalisation come from the
checkpoint. A missing checkpoint or folder, a folder without images or an unreadable image is
one ``error:`` line and exit status 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from pathlib import Path

import numpy as np

from cdsm.errors import CDSMError, short_message
from cdsm.extractor import FeatureExtractor, InputError, list_inputs
from cdsm.utils.logging import console_logging
from cdsm.utils.runfiles import atomic_write, one_line_errors

log = logging.getLogger("cdsm.extract")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Extract CDSM features of a folder of images",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="model_best.pth.tar or checkpoint.pth.tar of a run")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, metavar="FILE.npy",
                   help="features (N x D float32); the names go to FILE.txt beside it")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--which", default="teacher", choices=("teacher", "student"),
                   help="which model of a full checkpoint.pth.tar")
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    return p


def run(args) -> int:
    if args.batch_size < 1:
        raise CDSMError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_threads:
        import torch
        torch.set_num_threads(args.num_threads)
    out = Path(args.out)
    names_path = out.with_suffix(".txt")
    if names_path == out:
        raise CDSMError(f"--out {out}: the names go to OUT with suffix .txt; give the features another "
                        "name, e.g. feats.npy")
    paths, names = list_inputs(args.images)  # before loading the model: a bad folder fails fast
    if not paths:
        raise InputError(f"no image (.jpg, .jpeg, .png, .bmp) under {args.images}")
    t0 = time.perf_counter()
    extractor = FeatureExtractor(args.checkpoint, device=args.device, batch_size=args.batch_size,
                                 which=args.which)
    feats = extractor(paths)
    seconds = time.perf_counter() - t0
    buf = io.BytesIO()
    np.save(buf, feats)
    atomic_write(out, lambda f: f.write(buf.getvalue()))
    atomic_write(names_path, lambda f: f.write("".join(n + "\n" for n in names).encode()))
    log.info(f"==> {len(names)} images -> {out} ({feats.shape[0]} x {feats.shape[1]} float32) and "
             f"{names_path}; {seconds:.1f} s ({extractor.settings['arch']}, "
             f"{extractor.height}x{extractor.width}, {extractor.device})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    console_logging()
    return one_line_errors(lambda: run(args), (CDSMError,), describe=short_message)


if __name__ == "__main__":
    sys.exit(main())
