"""Features of a trained 3C model for a folder of images [added]: ccc.FeatureExtractor as a command.

    python examples/extract.py --checkpoint logs/log/model_best.pth.tar --images DIR --out feats.npy

Writes feats.npy (float32, N x D, rows L2-normalised) and, beside it, feats.txt: the images'
paths relative to DIR, one per line, in the rows' order (every .jpg/.jpeg/.png/.bmp under DIR,
recursively, sorted by relative path; hidden files skipped). The model, input size and
normalisation come from the checkpoint (its stored configuration). Both files are written
atomically. A missing checkpoint or folder, an empty folder or an unreadable image is one
``error:`` line, exit 2, and nothing is written.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ccc.errors import CCCError, short_message
from ccc.extractor import IMAGE_SUFFIXES, FeatureExtractor, list_inputs
from ccc.utils.logging import console_logging
from ccc.utils.runfiles import atomic_write, one_line_errors

log = logging.getLogger("ccc.extract")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Extract L2-normalised features of a folder of images with a "
                                            "trained 3C checkpoint",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", type=str, required=True, metavar="PATH",
                   help="model_best.pth.tar / checkpoint.pth.tar of a run (or an original 3C model_best.pth: "
                        "then also --arch, --pooling-type, --height, --width)")
    p.add_argument("--images", type=str, required=True, metavar="DIR", help="folder of images (recursive)")
    p.add_argument("--out", type=str, required=True, metavar="FEATS.npy",
                   help="features (.npy); the names go to the same path with .txt")
    p.add_argument("--device", type=str, default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-threads", type=int, default=None, help="torch CPU threads")
    g = p.add_argument_group("only for checkpoints without a stored configuration")
    g.add_argument("--arch", type=str, default=None)
    g.add_argument("--pooling-type", type=str, default=None, choices=("avg", "gem"))
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--width", type=int, default=None)
    return p


def run(args) -> int:
    out = Path(args.out)
    names_path = out.with_suffix(".txt")
    if names_path == out:
        raise CCCError(f"--out {out}: use a .npy file (the names are written to {names_path})")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    items, names = list_inputs(args.images)
    if not items:
        raise CCCError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {args.images}")
    fx = FeatureExtractor(args.checkpoint, device=args.device, batch_size=args.batch_size, arch=args.arch,
                          pooling_type=args.pooling_type, height=args.height, width=args.width)
    t0 = time.perf_counter()
    feats = fx(items)
    seconds = time.perf_counter() - t0
    atomic_write(out, lambda f: np.save(f, feats))
    text = "".join(f"{n}\n" for n in names)
    atomic_write(names_path, lambda f: f.write(text.encode()))
    log.info(f"==> {len(names)} images -> {out} ({feats.shape[0]} x {feats.shape[1]} float32, {fx.arch} "
             f"at {fx.height}x{fx.width}) and {names_path}; {seconds:.1f} s")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    console_logging()
    return one_line_errors(lambda: run(args), (CCCError,), describe=short_message)


if __name__ == "__main__":
    sys.exit(main())
