"""Speed and memory of common_eval against the usual way of doing the same, in one run.

    python -m common_eval.bench            # real dataset sizes (about 10-15 minutes on 2 cores)
    python -m common_eval.bench --quick    # small sizes, a minute
    python -m common_eval.bench --only evaluator,jaccard_cutoff   # some of the cases

Baselines are written here, in the style of the originals: a full-argsort NumPy evaluator
(torchreid's Python method: argsort every row, a Q x G match matrix, a loop over queries) and a
dense NumPy port of SpCL's compute_jaccard_distance (N x N arrays, Python loops over rows).
Floors measured in the same run: one row-min pass over the distance matrix, a full np.argsort of
it (uniform random distances), the kNN lists alone by torch (mm + topk; skipped without torch).
Times of the evaluator are the best of 3 calls, with one thread and with every core.
Each case runs in a fresh subprocess; peak memory is the peak resident size during the call
minus the resident size just before it (the inputs are not counted), read from /proc.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

# ------------------------------------------------------------------------------ measurement


def _status() -> dict:
    text = open("/proc/self/status").read()
    return {k: int(re.search(rf"{k}:\s+(\d+)", text).group(1)) * 1024 for k in ("VmRSS", "VmHWM")}


def measure(fn, *args, repeat: int = 1, **kwargs):
    """(result, seconds, peak bytes above the resident size at the call); with repeat > 1 the
    best time of that many calls (the machine is shared: the best is the least disturbed)."""
    best_s, peak = float("inf"), 0
    for _ in range(repeat):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident size
        except OSError:
            pass
        before = _status()["VmRSS"]
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        best_s = min(best_s, time.perf_counter() - t)
        peak = max(peak, _status()["VmHWM"] - before)
    return out, best_s, max(0, peak)


# ---------------------------------------------------------------------------------- inputs

def clustered_features(n, dim, ids, noise, rng, labels=None):
    labels = rng.integers(0, ids, n) if labels is None else labels
    centres = np.random.default_rng(12345).normal(size=(ids, dim)).astype(np.float32)
    x = centres[labels] + noise * rng.normal(size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


def ranking_problem(Q, G, ids, cams, dim, noise, seed):
    rng = np.random.default_rng(seed)
    qf, qp = clustered_features(Q, dim, ids, noise, rng)
    gf, gp = clustered_features(G, dim, ids, noise, rng)
    return qf, gf, qp, gp, rng.integers(0, cams, Q), rng.integers(0, cams, G)


# -------------------------------------------------------------------------------- baselines

def argsort_evaluator(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50, rows=None):
    """torchreid's Python evaluator: full argsort, match matrix, loop (optionally by row chunks,
    which changes nothing but the memory of the index and match matrices)."""
    Q = distmat.shape[0]
    rows = rows or Q
    all_ap, all_cmc = [], []
    for s in range(0, Q, rows):
        indices = np.argsort(distmat[s:s + rows], axis=1)
        matches = (g_pids[indices] == q_pids[s:s + rows, None]).astype(np.int32)
        for k in range(indices.shape[0]):
            q = s + k
            order = indices[k]
            keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
            hits = matches[k][keep]
            if not hits.any():
                continue
            cmc = hits.cumsum()
            cmc[cmc > 1] = 1
            all_cmc.append(cmc[:max_rank])
            precision = hits.cumsum() / np.arange(1, len(hits) + 1)
            all_ap.append((precision * hits).sum() / hits.sum())
    return float(np.mean(all_ap)), np.mean(all_cmc, axis=0)


def dense_knn(X, k):
    """Exact kNN as SpCL's CPU path gets it from faiss: k columns, self first."""
    N = X.shape[0]
    initial_rank = np.empty((N, k), dtype=np.int64)
    for s in range(0, N, 1024):
        d = 2 - 2 * X[s:s + 1024] @ X.T
        part = np.argpartition(d, k, axis=1)[:, :k]
        initial_rank[s:s + 1024] = np.take_along_axis(
            part, np.argsort(np.take_along_axis(d, part, 1), axis=1, kind="stable"), 1)
    return initial_rank


def dense_jaccard(X, k1=20, k2=6, initial_rank=None):
    """SpCL's compute_jaccard_distance on the CPU path, dense float32 N x N arrays and loops."""
    N = X.shape[0]
    if initial_rank is None:
        initial_rank = dense_knn(X, k1)

    def reciprocal(i, k):
        forward = initial_rank[i, :k + 1]
        backward = initial_rank[forward, :k + 1]
        return forward[np.where(backward == i)[0]]

    full = [reciprocal(i, k1) for i in range(N)]
    half = [reciprocal(i, int(np.around(k1 / 2))) for i in range(N)]
    V = np.zeros((N, N), dtype=np.float32)
    for i in range(N):
        expansion = full[i]
        for c in full[i]:
            if len(np.intersect1d(half[c], full[i])) > 2 / 3 * len(half[c]):
                expansion = np.append(expansion, half[c])
        expansion = np.unique(expansion)
        logits = -(2 - 2 * X[i] @ X[expansion].T)
        w = np.exp(logits - logits.max())
        V[i, expansion] = w / w.sum()
    if k2 != 1:
        V_qe = np.zeros_like(V)
        for i in range(N):
            V_qe[i] = V[initial_rank[i, :k2]].mean(0)
        V = V_qe
        del V_qe
    inv_index = [np.where(V[:, i] != 0)[0] for i in range(N)]
    jaccard = np.zeros((N, N), dtype=np.float32)
    for i in range(N):
        temp_min = np.zeros(N, dtype=np.float32)
        nonzero = np.where(V[i] != 0)[0]
        for j in nonzero:
            rows = inv_index[j]
            temp_min[rows] += np.minimum(V[i, j], V[rows, j])
        jaccard[i] = 1 - temp_min / (2 - temp_min)
    jaccard[jaccard < 0] = 0
    return jaccard


# ------------------------------------------------------------------------------------ cases

def _thread_ratio(fn, *args, **kwargs):
    """Seconds with one thread, and the speed-up of all cores over one (best of 3 each)."""
    one = measure(fn, *args, num_threads=1, repeat=3, **kwargs)[1]
    every = measure(fn, *args, num_threads=os.cpu_count() or 1, repeat=3, **kwargs)[1]
    return one, one / every


def case_evaluator(Q, G, ids, cams, seed=0, baseline_rows=None):
    from . import evaluate
    from .rank import distance_block
    qf, gf, qp, gp, qc, gc = ranking_problem(Q, G, ids, cams, 128, 1.4, seed)
    dist = distance_block(qf, gf, "sqeuclidean")
    del qf, gf
    ours, t_ours, m_ours = measure(evaluate, dist, qp, gp, qc, gc, repeat=3)
    t_one, threads = _thread_ratio(evaluate, dist, qp, gp, qc, gc)
    _, t_pass, _ = measure(np.min, dist, axis=1, repeat=3)
    (base_map, base_cmc), t_base, m_base = measure(argsort_evaluator, dist, qp, gp, qc, gc,
                                                   rows=baseline_rows)
    return {
        "case": f"evaluator {Q:,} x {G:,}", "ours_s": t_ours, "baseline_s": t_base,
        "speedup": t_base / t_ours, "one_pass_s": t_pass, "ours_over_one_pass": t_ours / t_pass,
        "one_thread_s": t_one, "threads_speedup": threads,
        "ours_peak_MB": m_ours / 2**20, "baseline_peak_MB": m_base / 2**20,
        "baseline_peak_unchunked_GB_estimate": Q * G * (4 + 8 + 8 + 4) / 2**30,
        "distmat_GB": dist.nbytes / 2**30, "mAP": ours.mAP,
        "agree": bool(abs(ours.mAP - base_map) < 1e-6 and np.allclose(ours.cmc, base_cmc, atol=1e-6)),
        "baseline_rows": baseline_rows or Q,
    }


def case_evaluator_uniform(Q, G, ids, cams, seed=0):
    """The worst case: uniform random distances (an untrained model's first evaluation), where
    every query's true matches rank anywhere. Baseline: one full argsort of the matrix."""
    from . import evaluate
    _, _, qp, gp, qc, gc = ranking_problem(Q, G, ids, cams, 8, 1.4, seed)
    dist = np.random.default_rng(seed + 1).random((Q, G), dtype=np.float32)
    ours, t_ours, m_ours = measure(evaluate, dist, qp, gp, qc, gc, repeat=3)
    t_one, threads = _thread_ratio(evaluate, dist, qp, gp, qc, gc)
    _, t_sort, m_sort = measure(np.argsort, dist, axis=1, repeat=3)
    _, t_pass, _ = measure(np.min, dist, axis=1, repeat=3)
    return {"case": f"evaluator, uniform random distances {Q:,} x {G:,}", "ours_s": t_ours,
            "ours_peak_MB": m_ours / 2**20, "argsort_s": t_sort,
            "over_argsort": t_sort / t_ours, "one_pass_s": t_pass,
            "ours_over_one_pass": t_ours / t_pass, "one_thread_s": t_one,
            "threads_speedup": threads, "mAP": ours.mAP}


def knn_floor(X, k):
    """The floor of any Jaccard: the kNN lists alone, as torch computes them (mm + topk)."""
    import torch
    x = torch.from_numpy(X)
    return torch.topk(x @ x.T, k, dim=1).indices


def case_jaccard_cutoff(N, per_cluster=12, k1=30, dim=256, cutoff=0.62, eps=0.6, seed=0):
    """jaccard_distance with cutoff = the largest eps in use (CDSM: 0.6 + 0.02) against the kNN
    floor and against the full sparse output, and what DBSCAN then costs on each."""
    from sklearn.cluster import DBSCAN

    from . import jaccard_distance
    rng = np.random.default_rng(seed)
    ids = -(-N // per_cluster)
    X, _ = clustered_features(N, dim, ids, 1.6, rng, labels=np.repeat(np.arange(ids), per_cluster)[:N])
    try:
        knn_floor(X[:64], 8)  # loads torch's libraries outside the measurement
        _, t_floor, m_floor = measure(knn_floor, X, k1, repeat=2)
    except ImportError:  # torch is not a dependency of common_eval
        t_floor = m_floor = float("nan")
    J, t_cut, m_cut = measure(jaccard_distance, X, k1, 6, cutoff=cutoff)
    full, t_full, m_full = measure(jaccard_distance, X, k1, 6)
    a, t_db_cut, _ = measure(lambda: DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit(J))
    b, t_db_full, _ = measure(lambda: DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit(full))
    return {"case": f"jaccard with cutoff {cutoff} N={N:,} ({dim}-d, {per_cluster} per cluster, "
                    f"k1={k1})", "ours_s": t_cut, "ours_peak_MB": m_cut / 2**20,
            "floor_s": t_floor, "floor_peak_MB": m_floor / 2**20, "over_floor": t_cut / t_floor,
            "full_s": t_full, "full_peak_MB": m_full / 2**20, "nnz_per_row": J.nnz / N,
            "full_nnz_per_row": full.nnz / N, "dbscan_s": t_db_cut, "dbscan_full_s": t_db_full,
            "labels_equal": bool(np.array_equal(a.labels_, b.labels_))}


def case_features(Q, G, ids, dim=256, seed=0):
    from . import evaluate
    qf, gf, qp, gp, qc, gc = ranking_problem(Q, G, ids, 15, dim, 1.4, seed)
    r, t, m = measure(evaluate, query_features=qf, gallery_features=gf, q_pids=qp, g_pids=gp,
                      q_camids=qc, g_camids=gc)
    return {"case": f"from features {Q:,} x {G:,} ({dim}-d)", "ours_s": t,
            "ours_peak_MB": m / 2**20, "inputs_GB": (qf.nbytes + gf.nbytes) / 2**30,
            "mAP": r.mAP}


def case_jaccard(N, ids, k1=30, dim=2048, baseline=True, seed=0):
    from . import jaccard_distance
    from .jaccard import knn
    rng = np.random.default_rng(seed)
    X, _ = clustered_features(N, dim, ids, 1.6, rng)
    _, t_prod, _ = measure(np.matmul, X, X.T)
    J, t_ours, m_ours = measure(jaccard_distance, X, k1, 6)
    out = {"case": f"jaccard N={N:,} ({dim}-d, k1={k1})", "ours_s": t_ours,
           "product_s": t_prod, "ours_over_product": t_ours / t_prod,
           "ours_peak_MB": m_ours / 2**20, "nnz_per_row": J.nnz / N}
    if baseline:
        ranks, t_knn, _ = measure(dense_knn, X, k1)
        D, t_base, m_base = measure(dense_jaccard, X, k1, 6, ranks)
        t_base += t_knn  # the port's time includes its kNN
        # exactness: the same neighbour lists in, the same matrix out (float32 kNN near-ties
        # can order neighbours differently between any two kNN implementations)
        same = jaccard_distance(X, k1, 6, knn_indices=ranks, output="dense")
        out.update({"baseline_s": t_base, "speedup": t_base / t_ours,
                    "baseline_peak_MB": m_base / 2**20,
                    "max_abs_diff": float(np.abs(same - D).max()),
                    "knn_lists_equal_share": float(np.mean(np.all(ranks == knn(X, k1)[0], axis=1)))})
    return out


def cases(quick: bool, dense_msmt: bool):
    if quick:
        return [
            ("case_evaluator", dict(Q=600, G=3000, ids=150, cams=6)),
            ("case_evaluator_uniform", dict(Q=600, G=3000, ids=150, cams=6)),
            ("case_features", dict(Q=500, G=20000, ids=1000)),
            ("case_jaccard", dict(N=1500, ids=150, dim=256)),
            ("case_jaccard_cutoff", dict(N=1500)),
        ]
    return [
        ("case_evaluator", dict(Q=3368, G=15913, ids=751, cams=6)),
        ("case_evaluator_uniform", dict(Q=3368, G=15913, ids=751, cams=6)),
        ("case_jaccard_cutoff", dict(N=10000)),
        ("case_evaluator", dict(Q=11659, G=82161, ids=3060, cams=15, baseline_rows=1000)),
        ("case_features", dict(Q=20000, G=1_000_000, ids=20000)),
        ("case_jaccard", dict(N=12936, ids=751)),
        ("case_jaccard", dict(N=32621, ids=1041, baseline=dense_msmt)),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common_eval.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a minute)")
    parser.add_argument("--dense-msmt", action="store_true",
                        help="also run the dense Jaccard port at N=32,621 (~10 GB, minutes)")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated case names to run (case_ prefix optional): "
                             "evaluator, evaluator_uniform, features, jaccard, jaccard_cutoff")
    parser.add_argument("--run-case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_case:  # child process: one case, JSON on stdout
        name, kwargs = json.loads(args.run_case)
        print(json.dumps(globals()[name](**kwargs)))
        return 0
    rows = []
    selected = cases(args.quick, args.dense_msmt)
    if args.only:
        wanted = {w.strip().removeprefix("case_") for w in args.only.split(",") if w.strip()}
        known = {name.removeprefix("case_") for name, _ in selected}
        if not wanted <= known:
            print(f"error: unknown case(s) {', '.join(sorted(wanted - known))}; valid: "
                  f"{', '.join(sorted(known))}", file=sys.stderr)
            return 2
        selected = [(n, k) for n, k in selected if n.removeprefix("case_") in wanted]
    load = os.getloadavg()[0]
    print(f"# common_eval bench ({os.cpu_count()} cores, load average {load:.2f} at start)")
    for name, kwargs in selected:
        proc = subprocess.run([sys.executable, "-m", "common_eval.bench", "--run-case",
                               json.dumps([name, kwargs])], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name} {kwargs}: failed\n{proc.stderr}", file=sys.stderr)
            return 1
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(_format(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


def _format(row: dict) -> str:
    parts = [f"{row['case']}:", f"ours {row['ours_s']:.2f} s, peak +{row['ours_peak_MB']:.0f} MB"]
    if "baseline_s" in row:
        parts.append(f"baseline {row['baseline_s']:.2f} s, peak +{row['baseline_peak_MB']:.0f} MB "
                     f"-> {row['speedup']:.1f}x faster")
    if "over_argsort" in row:
        parts.append(f"full np.argsort of the matrix {row['argsort_s']:.3f} s -> "
                     f"{row['over_argsort']:.1f}x faster (target >= 10x)")
    if "threads_speedup" in row:
        parts.append(f"one thread {row['one_thread_s']:.3f} s; {os.cpu_count()} threads "
                     f"{row['threads_speedup']:.2f}x faster (target >= 1.5x)")
    if "over_floor" in row:
        parts.append(f"kNN floor (torch mm + topk) {row['floor_s']:.2f} s, peak "
                     f"+{row['floor_peak_MB']:.0f} MB -> ours / floor = {row['over_floor']:.2f} "
                     "(target <= 6; peak target <= 600 MB)")
        parts.append(f"without cutoff: {row['full_s']:.2f} s, peak +{row['full_peak_MB']:.0f} MB, "
                     f"{row['full_nnz_per_row']:.0f} entries per row (with: "
                     f"{row['nnz_per_row']:.1f})")
        parts.append(f"DBSCAN (eps 0.6) {row['dbscan_s']:.3f} s with cutoff, "
                     f"{row['dbscan_full_s']:.2f} s without; labels equal: {row['labels_equal']}")
    if "ours_over_one_pass" in row:
        parts.append(f"ours / one row-min pass ({row['one_pass_s']:.3f} s) = "
                     f"{row['ours_over_one_pass']:.1f}")
    if "ours_over_product" in row:
        parts.append(f"ours / X@X.T alone ({row['product_s']:.2f} s) = "
                     f"{row['ours_over_product']:.2f}")
    if "agree" in row:
        parts.append(f"agree: {row['agree']} (mAP {100 * row['mAP']:.2f})")
    if "max_abs_diff" in row:
        parts.append(f"max |ours - dense| = {row['max_abs_diff']:.1e} with the same kNN lists "
                     f"(our kNN equals the port's on {100 * row['knn_lists_equal_share']:.1f}% "
                     "of rows; the rest differ by float32 near-ties)")
    if "inputs_GB" in row:
        parts.append(f"inputs {row['inputs_GB']:.2f} GB, mAP {100 * row['mAP']:.2f}")
    return "\n    ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
