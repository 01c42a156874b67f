"""Features of a trained BUC model for a folder of images (or of tracklet folders, video models).

    python examples/extract.py --checkpoint logs/market1501/model_best.pth.tar --images crops/ --out feats.npy

Writes ``feats.npy`` (float32, N x d, rows L2-normalised: BUC's evaluation feature, pool5 averaged
over the frames of a tracklet) and beside it ``feats.txt``, the N names in the same order (image
models: every .jpg/.jpeg/.png/.bmp under the folder, recursively, as relative paths, sorted;
video models: every sub-folder that holds frames, one tracklet each). Both files are written
atomically. Everything about the model comes from the checkpoint (``buc.FeatureExtractor``);
-a/-f/--height/--width are needed only for checkpoints of the original code, which store no
settings. Bad input (a missing checkpoint or folder, an empty folder, an unreadable image): one
``error:`` line, exit 2, nothing written.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train.py

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from buc import models  # noqa: E402
from buc.extractor import FeatureExtractor, list_inputs  # noqa: E402
from buc.utils.data import CorruptImageError  # noqa: E402
from buc.utils.runfiles import BUCError, atomic_write, one_line_errors  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="features of a BUC checkpoint for a folder of images")
    p.add_argument("--checkpoint", required=True, help="model_best.pth.tar or checkpoint.pth.tar")
    p.add_argument("--images", required=True,
                   help="folder of images (video models: a folder whose sub-folders are tracklets)")
    p.add_argument("--out", required=True, help="features .npy (names: the same path with .txt)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32,
                   help="images (frames) per forward pass")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    g = p.add_argument_group("only for checkpoints of the original code (no stored settings)")
    g.add_argument("-a", "--arch", default=None, choices=models.names())
    g.add_argument("-f", "--fea", type=int, default=None)
    g.add_argument("--height", type=int, default=None)
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--video", action="store_true", default=None, help="sub-folders are tracklets")
    return p


def run(args) -> int:
    if args.batch_size < 1:
        raise BUCError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = Path(args.out)
    if out.suffix != ".npy":
        raise BUCError(f"--out {out}: the features file must end in .npy")
    images = Path(args.images)
    if not images.is_dir():
        raise BUCError(f"--images {images}: no such folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    fx = FeatureExtractor(args.checkpoint, device=args.device, batch_size=args.batch_size, arch=args.arch,
                          fea=args.fea, height=args.height, width=args.width, video=args.video)
    items, names = list_inputs(images, fx.is_video)
    if not items:
        kind = "tracklet folders of images" if fx.is_video else "images"
        raise BUCError(f"--images {images}: no {kind} (.jpg, .jpeg, .png, .bmp) in it")
    t0 = time.time()
    feats = fx(items)
    seconds = time.time() - t0
    atomic_write(out, lambda f: np.save(f, feats))
    text = "".join(f"{n}\n" for n in names).encode()
    atomic_write(out.with_suffix(".txt"), lambda f: f.write(text))
    print(f"=> {len(names)} {'tracklets' if fx.is_video else 'images'}, {feats.shape[1]}-d features in "
          f"{seconds:.1f} s: {out} (names: {out.with_suffix('.txt')})")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return one_line_errors(lambda: run(args), (BUCError, CorruptImageError))


if __name__ == "__main__":
    sys.exit(main())
