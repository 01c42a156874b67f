"""The bottom-up merge criterion (spec B7): single linkage on sample pairs plus a size penalty.

For samples i < j in different clusters A = l(i), B = l(j) the dissimilarity is

    key(i, j) = ||e_i - e_j||^2 + lambda * (|A| + |B|)

(squared Euclidean on L2-normalised features; cluster sizes frozen at the start of the round).
Pairs are taken in ascending order of key; each pair merges the two *current* clusters of its
samples (relabelling the larger label to the smaller one, so merges inside a round are
transitive and pairs already inside one cluster change nothing) until exactly ``nums_to_merge``
merges happened. Surviving labels are re-indexed 0..C'-1 in ascending order of their old values.

This is the original ``select_merge_data`` + ``generate_new_train_data`` without the dense
N x N argsort and the O(N^2) Python loop: distances are computed in row blocks, only the pairs
below a threshold are kept (the threshold = the k-th smallest key, k grown until enough merges
are found), and a union-find whose root is the smallest label replays the walk. Ties in key are
broken by the flat index i * N + j (row-major), i.e. as a stable sort of the original's
flattened matrix would; the original's unstable quicksort had no defined order for ties.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class MergeError(ValueError):
    """A merge that cannot be done as asked (e.g. it would leave a single cluster)."""


@dataclass
class MergeResult:
    labels: np.ndarray          # new labels, 0..C'-1
    pairs: list                 # the (i, j) sample pairs that merged two clusters, in order
    keys: list                  # their keys (distance + penalty)
    num_before: int
    num_after: int


def pairwise_sq_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """||x_i - y_j||^2 = |x_i|^2 + |y_j|^2 - 2 x_i.y_j in float32 (the original's formula)."""
    y = x if y is None else y
    xx = x.pow(2).sum(dim=1, keepdim=True)
    yy = y.pow(2).sum(dim=1, keepdim=True)
    d = xx + yy.t()
    return d.addmm_(x, y.t(), beta=1, alpha=-2)


def check_merge(num_clusters: int, nums_to_merge: int) -> None:
    if nums_to_merge < 1:
        raise MergeError(f"nothing to merge: nums_to_merge = {nums_to_merge} (merge_percent x the "
                         f"number of training samples is below 1); use a larger --merge_percent")
    if nums_to_merge >= num_clusters - 1:
        raise MergeError(
            f"merging {nums_to_merge} clusters out of {num_clusters} would leave "
            f"{max(num_clusters - nums_to_merge, 1)} cluster: every sample would end up in one "
            f"cluster and the repelled loss would have nothing to repel. Use a smaller "
            f"--merge_percent (the original uses 0.05) or fewer steps.")


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        p = self.parent
        root = a
        while p[root] != root:
            root = p[root]
        while p[a] != root:
            p[a], a = root, p[a]
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        lo, hi = (ra, rb) if ra < rb else (rb, ra)
        self.parent[hi] = lo          # the smaller label survives
        return True


def _candidates(feats, labels_t, sizes_t, penalty, threshold, k, block_rows):
    """Pairs (key, flat index) with i < j, l(i) != l(j); either the k smallest keys' threshold
    (threshold None) or every pair with key <= threshold."""
    n = feats.shape[0]
    sq = feats.pow(2).sum(dim=1)
    col = torch.arange(n, device=feats.device)
    best = torch.empty(0, dtype=torch.float32, device=feats.device)
    keys, flats = [], []
    for r0 in range(0, n, block_rows):
        r1 = min(n, r0 + block_rows)
        x = feats[r0:r1]
        d = (sq[r0:r1, None] + sq[None, :]).addmm_(x, feats.t(), beta=1, alpha=-2)
        cnt = sizes_t[labels_t[r0:r1]][:, None] + sizes_t[labels_t][None, :]
        key = d + penalty * cnt
        rows = torch.arange(r0, r1, device=feats.device)
        bad = (col[None, :] <= rows[:, None]) | (labels_t[r0:r1, None] == labels_t[None, :])
        key = key.masked_fill(bad, float("inf"))
        if threshold is None:
            flat = key.flatten()
            kk = min(k, flat.numel())
            best = torch.cat([best, torch.topk(flat, kk, largest=False, sorted=False).values])
            if best.numel() > k:
                best = torch.topk(best, k, largest=False, sorted=False).values
        else:
            sel = (key <= threshold) & ~bad
            ii, jj = sel.nonzero(as_tuple=True)
            keys.append(key[ii, jj].cpu())
            flats.append(((ii + r0) * n + jj).cpu())
    if threshold is None:
        best = best[torch.isfinite(best)]
        return float(best.max()) if best.numel() else None
    return torch.cat(keys).numpy(), torch.cat(flats).numpy()


def merge_clusters(features, labels, nums_to_merge: int, size_penalty: float,
                   block_rows: int = 4096, device=None, initial_k: int | None = None) -> MergeResult:
    """One round of bottom-up merging (see the module docstring); ``labels`` must be 0..C-1.
    ``initial_k``: pairs kept in the first pass (default max(4m, m + 1024)); grown x4 as needed."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    if feats.ndim != 2 or feats.shape[0] != n:
        raise ValueError(f"features must be (N, d) with N = {n} labels, got {tuple(feats.shape)}")
    if not torch.isfinite(feats).all():
        raise ValueError("features contain NaN or inf; cannot merge")
    num_before = len(np.unique(labels))
    if labels.min(initial=0) < 0 or labels.max(initial=-1) != num_before - 1:
        raise ValueError("labels must be 0..C-1 with every value used")
    check_merge(num_before, nums_to_merge)
    if device is not None:
        feats = feats.to(device)
    sizes = np.bincount(labels, minlength=num_before)
    labels_t = torch.from_numpy(labels).to(feats.device)
    sizes_t = torch.from_numpy(sizes).to(feats.device).float()
    penalty = torch.tensor(size_penalty, dtype=torch.float32)   # lambda in float32, as the original

    total_pairs = n * (n - 1) // 2 - int(sum(s * (s - 1) // 2 for s in sizes))
    k = min(total_pairs, initial_k or max(4 * nums_to_merge, nums_to_merge + 1024))
    while True:
        threshold = _candidates(feats, labels_t, sizes_t, penalty.item(), None, k, block_rows)
        keys, flats = _candidates(feats, labels_t, sizes_t, penalty.item(), threshold, k, block_rows)
        order = np.lexsort((flats, keys))
        uf = _UnionFind(num_before)
        pairs, merged_keys = [], []
        for o in order:
            i, j = divmod(int(flats[o]), n)
            if uf.union(int(labels[i]), int(labels[j])):
                pairs.append((i, j))
                merged_keys.append(float(keys[o]))
                if len(pairs) == nums_to_merge:
                    break
        if len(pairs) == nums_to_merge or len(keys) >= total_pairs:
            break
        k = min(total_pairs, 4 * k)
    if len(pairs) < nums_to_merge:  # cannot happen while nums_to_merge < C (check_merge)
        raise MergeError(f"only {len(pairs)} of {nums_to_merge} merges possible")
    roots = np.array([uf.find(int(c)) for c in range(num_before)])
    _, new = np.unique(roots[labels], return_inverse=True)
    return MergeResult(labels=new.astype(np.int64), pairs=pairs, keys=merged_keys,
                       num_before=num_before, num_after=num_before - len(pairs))


def merge_clusters_reference(features, labels, nums_to_merge: int, size_penalty: float) -> np.ndarray:
    """The original algorithm, literally (dense matrix, +100000 masks, full argsort, relabel
    loop), with a stable sort. O(N^2) memory and Python time: for tests on small N only."""
    labels = [int(x) for x in labels]
    n = len(labels)
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    dists = pairwise_sq_distances(x)
    dists.add_(torch.tril(100000 * torch.ones(n, n)))
    sizes = {lab: labels.count(lab) for lab in set(labels)}
    cnt = torch.tensor([float(sizes[lab]) for lab in labels])
    dists += size_penalty * (cnt.view(1, n) + cnt.view(n, 1))
    for i in range(n):
        for j in range(i + 1, n):
            if labels[i] == labels[j]:
                dists[i, j] = 100000
    flat = np.argsort(dists.numpy(), axis=None, kind="stable")
    idx1, idx2 = np.unravel_index(flat, (n, n))
    before = len(set(labels))
    for a, b in zip(idx1, idx2):
        la, lb = labels[a], labels[b]
        lo, hi = min(la, lb), max(la, lb)
        labels = [lo if v == hi else v for v in labels]
        if before - len(set(labels)) == nums_to_merge:
            break
    uniq = sorted(set(labels))
    return np.array([uniq.index(v) for v in labels], dtype=np.int64)
