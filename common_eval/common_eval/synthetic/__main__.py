"""python -m common_eval.synthetic --layout NAME --root DIR [--counts real] [...]
   |  --benchmark DIR [--seed N]"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import FOLDERS, LAYOUTS, generate, generate_benchmark, is_current, read_manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m common_eval.synthetic",
        description="Write synthetic re-ID datasets in the real folder layouts.")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--layout", choices=LAYOUTS, help="one dataset layout (needs --root)")
    what.add_argument("--benchmark", metavar="DIR",
                      help="every layout in domains a and b: DIR/a/<dataset>, DIR/b/<dataset>")
    ap.add_argument("--root", help="folder that receives the dataset folder (with --layout)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--domain", choices=("a", "b"), default="a")
    ap.add_argument("--ids", type=int, help="train identities (default 50)")
    ap.add_argument("--test-ids", type=int, help="test identities (default 60)")
    ap.add_argument("--cams", type=int, help="cameras (camera pairs for cuhk03); default: the real count")
    ap.add_argument("--counts", choices=("benchmark", "real"), default="benchmark",
                    help="real: the real dataset's identities, cameras and about its image (tracklet) "
                         "counts (with --layout; no --ids/--test-ids/--cams)")
    ap.add_argument("--overwrite", action="store_true", help="replace a dataset this generator wrote before")
    ap.add_argument("--reuse", action="store_true",
                    help="with --layout: keep a dataset already there with the same arguments")
    a = ap.parse_args(argv)
    if a.layout and not a.root:
        ap.error("--layout needs --root DIR")
    if a.benchmark and (a.root or a.ids or a.test_ids or a.cams or a.domain != "a"
                        or a.counts != "benchmark"):
        ap.error("--benchmark takes only --seed and --overwrite (it writes both domains at default size)")
    t0 = time.time()
    try:
        if a.layout and a.reuse and not (a.ids or a.test_ids or a.cams) and is_current(
                a.root, a.layout, seed=a.seed, domain=a.domain, counts=a.counts):
            path = Path(a.root) / FOLDERS[a.layout]
            done = {a.domain: {a.layout: path}}
        elif a.layout:
            path = generate(a.layout, a.root, seed=a.seed, domain=a.domain, ids=a.ids,
                            test_ids=a.test_ids, cams=a.cams, overwrite=a.overwrite, counts=a.counts)
            done = {a.domain: {a.layout: path}}
        else:
            done = generate_benchmark(a.benchmark, seed=a.seed, overwrite=a.overwrite)
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for domain, paths in done.items():
        for layout, path in paths.items():
            stats = read_manifest(path.parent, layout)["stats"]
            parts = [f"{k} {v}" for k, v in stats.items() if isinstance(v, dict) and k != "clock"]
            print(f"{domain} {layout:13s} {path}  " + "; ".join(parts))
    print(f"done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
