#!/usr/bin/env python
"""Features of a trained PUL model for a folder of images (what PUL clusters and ranks).

    python examples/extract.py --checkpoint LOGS/checkpoints/25.keras --images DIR --out feats.npy

Writes feats.npy (float32, N x D, rows L2-normalised: the avg_pool features in inference mode)
and, beside it, feats.txt: the image names (paths relative to DIR), one per line, in the order of
the rows. Every .jpg/.jpeg/.png/.bmp under DIR is read (recursively, sorted by relative path; hidden
files skipped), with the checkpoint's input size and PUL's preprocessing. Both files are written
atomically, after every feature is computed. The API: ``pul.FeatureExtractor(checkpoint)``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pul  # noqa: F401  (sets KERAS_BACKEND=tensorflow)
from pul import PULError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a .keras file written by examples/train.py")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    p.add_argument("--out", required=True, help="features file (.npy); the names go to the same path "
                                                "with suffix .txt")
    p.add_argument("--device", default="cpu", help="cpu, gpu or cuda:N")
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args(argv)
    if a.batch_size < 1:
        p.error("--batch-size must be >= 1")
    out = Path(a.out)
    names_path = out.with_suffix(".txt")
    if names_path == out:
        p.error("--out must not end in .txt (the names are written to OUT with suffix .txt)")
    try:
        import numpy as np

        from pul.extractor import FeatureExtractor, list_inputs
        from pul.runfiles import atomic_write
        if not Path(a.checkpoint).is_file():
            raise PULError(f"checkpoint '{a.checkpoint}' does not exist")
        paths, names = list_inputs(a.images)
        if not paths:
            raise PULError(f"no image (.jpg/.jpeg/.png/.bmp) under {a.images}")
        t = time.perf_counter()
        fx = FeatureExtractor(a.checkpoint, device=a.device, batch_size=a.batch_size)
        feats = fx(paths)
        seconds = time.perf_counter() - t
        atomic_write(out, lambda f: np.save(f, feats))
        atomic_write(names_path, lambda f: f.write("".join(n + "\n" for n in names).encode()))
    except PULError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        from pul.runfiles import disk_full_line
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    print(f"{len(names)} images -> {out} ({feats.shape[0]} x {feats.shape[1]} float32, {seconds:.1f} s) "
          f"and {names_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
