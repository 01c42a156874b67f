#!/usr/bin/env python
"""PUL's k-means step, scikit-learn (the original's) against --kmeans faiss, in one run.

    python examples/bench_kmeans.py                       # K 750, 12,936 x 2048 (Market's train set)
    python examples/bench_kmeans.py --n 3000 --k 175 --dim 512 --n-init 1

Synthetic clustered features: K centres with |N(0, 1)| coordinates (ReLU features are
non-negative), N points split evenly among them, each its centre plus N(0, sigma^2) noise. Prints
the seconds of each method, their ratio, and the agreement of faiss's labels with scikit-learn's
(adjusted Rand index, NMI) and with the generating clusters.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def clustered_features(n: int, k: int, dim: int, sigma: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((k, dim)))
    truth = np.arange(n) % k
    x = centres[truth] + sigma * rng.standard_normal((n, dim))
    return x.astype(np.float32), truth


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=12936)
    p.add_argument("--k", type=int, default=750)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--sigma", type=float, default=0.5, help="noise standard deviation per coordinate")
    p.add_argument("--n-init", type=int, default=10, help="n_init of scikit-learn = nredo of faiss")
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if min(a.n, a.k, a.dim, a.n_init, a.max_iter) < 1 or a.k > a.n:
        p.error("--n, --k, --dim, --n-init, --max-iter must be >= 1 and --k <= --n")
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from pul.selection import kmeans
    x, truth = clustered_features(a.n, a.k, a.dim, a.sigma, a.seed)
    print(f"{a.n} x {a.dim} features, K {a.k}, n_init/nredo {a.n_init}, max_iter {a.max_iter}, "
          f"sigma {a.sigma}")
    out = {}
    for method in ("sklearn", "faiss"):
        t = time.perf_counter()
        out[method] = kmeans(x, a.k, seed=a.seed, n_init=a.n_init, max_iter=a.max_iter, method=method)
        out[method + "_s"] = time.perf_counter() - t
        c = out[method]
        print(f"  {method:8s} {out[method + '_s']:8.2f} s  inertia {c.inertia:.6g}  iterations {c.n_iter}  "
              f"ARI vs truth {adjusted_rand_score(truth, c.labels):.4f}")
    ref, fa = out["sklearn"].labels, out["faiss"].labels
    print(f"  faiss vs scikit-learn labels: ARI {adjusted_rand_score(ref, fa):.4f}  "
          f"NMI {normalized_mutual_info_score(ref, fa):.4f}")
    print(f"  time ratio scikit-learn / faiss: {out['sklearn_s'] / out['faiss_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
