"""Features of your own tracklets from a trained AuxUSL checkpoint (``auxusl.FeatureExtractor``).

    python examples/extract.py --checkpoint log/x/model_mAP_best.pth.tar --images DIR --out feats.npy

Every sub-folder of DIR that holds frames (.jpg/.jpeg/.png/.bmp) is one tracklet; the frames are
sorted by name, the tracklets by relative path. Writes feats.npy (float32, one L2-normalised row
per tracklet: the teacher's per-frame BN features, L2-normalised, averaged over the frames, as
the evaluation computes them) and, beside it, feats.txt: the tracklets' relative paths in the
same order. The checkpoint's stored configuration gives the architecture and input size.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

from auxusl.errors import AuxUSLError, short_message
from auxusl.utils.runfiles import atomic_write


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="features of a folder of tracklets from an AuxUSL checkpoint")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="a checkpoint written by train.py")
    p.add_argument("--images", required=True, metavar="DIR", help="folder whose sub-folders are tracklets")
    p.add_argument("--out", required=True, metavar="FILE", help="the .npy file to write (names: FILE.txt)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="frames per forward pass")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    try:
        from auxusl.extractor import FeatureExtractor, list_inputs

        if args.batch_size < 1:
            raise AuxUSLError(f"--batch-size must be >= 1, got {args.batch_size}")
        if not Path(args.images).is_dir():
            raise AuxUSLError(f"--images {args.images} is not a folder")
        tracklets, names = list_inputs(args.images)
        if not tracklets:
            raise AuxUSLError(f"--images {args.images} holds no .jpg/.jpeg/.png/.bmp frames")
        if not Path(args.checkpoint).is_file():
            raise AuxUSLError(f"checkpoint {args.checkpoint} does not exist")
        if out.with_suffix(".txt") == out:
            raise AuxUSLError(f"--out {out}: the names go to OUT with suffix .txt; give the features "
                              "another name, e.g. feats.npy")
        t0 = time.perf_counter()
        fx = FeatureExtractor(args.checkpoint, device=args.device, batch_size=args.batch_size)
        feats = fx(tracklets)
        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write(out, lambda f: f.write(buf.getvalue()))
        atomic_write(out.with_suffix(".txt"), lambda f: f.write("".join(n + "\n" for n in names).encode()))
    except AuxUSLError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a device that does not exist, out of memory
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"{feats.shape[0]} tracklets x {feats.shape[1]} features in {out} (names in "
          f"{out.with_suffix('.txt')}); {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
