"""Cost of one HDC epoch's clustering (Jaccard distance + HDC), sparse against dense, at a real size.

    python -m ccc.hdc.bench --n 31280                 # MSMT17's training-set size, the sparse path
    python -m ccc.hdc.bench --n 31280 --with-dense    # and the dense N x N path, with the ratios

The features are synthetic and clustered: ``--ids`` identities (1,041 for MSMT17) with random
sizes, centres drawn from a standard normal, each sample its centre plus ``--noise`` times a
standard normal, L2-normalised, ``--dim`` dimensions (2048: 3C's ResNet-50 with GeM pooling).
The clustering is 3C's HDC epoch with the msmt17 preset (``--num-clusters 1000``, k-means++2,
Euler cosine, POD outliers, k1 30, k2 6): ``ccc.cluster.jaccard_distance`` sparse (what
examples/train.py gives HDC) or dense (what it gave before), then ``HDC.fit(..., inplace=True)``;
the dense path also computes step 2.1 as before (all N x K memberships, then each sample's own).

Each path runs in a fresh subprocess; its peak resident size (VmHWM, the whole process: Python,
numpy, torch (imported with the ccc package), the features and everything the clustering holds)
and the resident size just before the clustering are read from /proc. Seconds are wall-clock;
the CPU seconds of all threads are printed too (on a shared machine the wall-clock time depends
on the load). With --with-dense the labels of the two paths are compared.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _memory() -> dict:
    text = Path("/proc/self/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def clustered_features(n: int, dim: int, ids: int, noise: float, seed: int) -> np.ndarray:
    """n L2-normalised float32 samples around ``ids`` centres (written in blocks: no float64 n x dim)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, ids, n)
    centres = rng.standard_normal((ids, dim), dtype=np.float32)
    X = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 4096):
        b = min(n, a + 4096)
        noise_ab = rng.standard_normal((b - a, dim), dtype=np.float32)
        X[a:b] = centres[labels[a:b]] + np.float32(noise) * noise_ab
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def run_case(args) -> dict:
    """One path in this process: seconds and memory (the parent reads the printed JSON)."""
    from ccc.cluster import jaccard_distance
    from ccc.hdc import HDC
    from ccc.hdc import hdc as hdc_module

    spent = {"memberships": 0.0, "harmonic": 0.0}

    def timed(name, fn):
        def call(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t
        return call

    X = clustered_features(args.n, args.dim, args.ids, args.noise, args.seed)
    before = _memory()["VmRSS"]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    dist = jaccard_distance(X, args.k1, args.k2, dense=args.case == "dense", num_threads=args.threads)
    t1 = time.perf_counter()
    stored = int(dist.nnz) if args.case == "sparse" else None
    hdc = HDC(args.clusters, max_iter=80, init="k-means++2", similarity="Euler Cosine",
              num_threads=args.threads)
    # the two costly steps of an iteration, timed where HDC.iterate looks them up
    originals = hdc_module.own_memberships, hdc_module.harmonic_discrepancy

    def full_memberships(X, centroids, labels, similarity="Euler Cosine", x_map=None):
        """Step 2.1 as HDC did it with the dense matrix: all N x K memberships, then the own ones."""
        return hdc_module.memberships(X, centroids, similarity, x_map)[np.arange(len(labels)), labels]

    step_21 = full_memberships if args.case == "dense" else originals[0]
    hdc_module.own_memberships = timed("memberships", step_21)
    hdc_module.harmonic_discrepancy = timed("harmonic", originals[1])
    try:
        hdc.fit(X, dist, outlier=True, random_state=args.seed, inplace=True)
    finally:
        hdc_module.own_memberships, hdc_module.harmonic_discrepancy = originals
    t2 = time.perf_counter()
    cpu = time.process_time() - cpu0
    del dist
    if args.labels_out:
        np.save(args.labels_out, hdc.labels_)
    mem = _memory()
    return {"case": args.case, "jaccard_s": t1 - t0, "hdc_s": t2 - t1, "cluster_s": t2 - t0, "cpu_s": cpu,
            "memberships_s": spent["memberships"], "harmonic_s": spent["harmonic"],
            "hdc_iterations": hdc.n_iter_, "per_iteration_s": (t2 - t1) / max(1, hdc.n_iter_),
            "stored_per_row": None if stored is None else stored / args.n,
            "outliers": int((hdc.labels_ < 0).sum()), "rss_before_gb": before / 1e9,
            "peak_rss_gb": mem["VmHWM"] / 1e9, "peak_extra_gb": (mem["VmHWM"] - before) / 1e9}


def _subprocess(args, case: str, labels_out: str) -> dict:
    cmd = [sys.executable, "-m", "ccc.hdc.bench", "--case", case, "--labels-out", labels_out,
           "--n", str(args.n), "--dim", str(args.dim), "--ids", str(args.ids),
           "--clusters", str(args.clusters),
           "--noise", str(args.noise), "--k1", str(args.k1), "--k2", str(args.k2), "--seed", str(args.seed)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(r: dict) -> str:
    extra = f", {r['stored_per_row']:.1f} stored pairs per row" if r["stored_per_row"] is not None else ""
    return (f"{r['case']:>6}: Jaccard {r['jaccard_s']:.1f} s + HDC {r['hdc_s']:.1f} s "
            f"({r['hdc_iterations']} iterations, {r['per_iteration_s']:.2f} s each) "
            f"= {r['cluster_s']:.1f} s (HDC's memberships {r['memberships_s']:.1f} s, harmonic "
            f"discrepancy {r['harmonic_s']:.1f} s), CPU {r['cpu_s']:.1f} s over all threads; "
            f"peak RSS {r['peak_rss_gb']:.2f} GB ({r['peak_extra_gb']:.2f} GB above the "
            f"{r['rss_before_gb']:.2f} GB before clustering); {r['outliers']} outliers{extra}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m ccc.hdc.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=31280, help="samples (default: MSMT17's 31,280)")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension (3C: 2048)")
    p.add_argument("--ids", type=int, default=1041, help="identities of the synthetic features")
    p.add_argument("--clusters", type=int, default=1000, help="HDC's K (--num-clusters; msmt17 preset 1000)")
    p.add_argument("--noise", type=float, default=1.0, help="noise around each centre, per coordinate")
    p.add_argument("--k1", type=int, default=30)
    p.add_argument("--k2", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="threads of the kernels (default: all cores)")
    p.add_argument("--with-dense", action="store_true",
                   help="also run the dense N x N path; print the ratios")
    p.add_argument("--case", choices=("sparse", "dense"), help=argparse.SUPPRESS)
    p.add_argument("--labels-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.n < 2 or args.dim < 1 or args.ids < 1 or not 2 <= args.clusters <= args.n:
        print("error: need --n >= 2, --dim >= 1, --ids >= 1 and 2 <= --clusters <= --n", file=sys.stderr)
        return 2
    if args.case:
        print(json.dumps(run_case(args)))
        return 0
    print(f"HDC epoch at N {args.n}, {args.dim}-d, {args.ids} identities, K {args.clusters}, k1 {args.k1}, "
          f"k2 {args.k2}, {args.threads or os.cpu_count()} thread(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        sparse_r = _subprocess(args, "sparse", f"{tmp}/sparse.npy")
        print(_line(sparse_r), flush=True)
        if args.with_dense:
            dense_r = _subprocess(args, "dense", f"{tmp}/dense.npy")
            print(_line(dense_r))
            same = np.array_equal(np.load(f"{tmp}/sparse.npy"), np.load(f"{tmp}/dense.npy"))
            print(f"labels identical: {same}")
            print(f"dense / sparse: clustering {dense_r['cluster_s'] / sparse_r['cluster_s']:.1f}x the time "
                  f"(HDC alone {dense_r['hdc_s'] / sparse_r['hdc_s']:.1f}x; CPU seconds "
                  f"{dense_r['cpu_s'] / sparse_r['cpu_s']:.1f}x), peak RSS "
                  f"{dense_r['peak_rss_gb'] / sparse_r['peak_rss_gb']:.1f}x")
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
