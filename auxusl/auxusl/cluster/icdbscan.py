"""ICDBSCAN: DBSCAN with cannot-link constraints, AuxUSL's Time-Overlapping Constraint (TOC)
in training (``CLUSTER.ICDBSCAN_OPTION``). Pure Python on a dense distance, O(N^2), as the
original.

fit_predict(D):
1. eps-neighbourhoods N(i) = {j != i : D[i, j] <= eps} plus i.
2. Relaxation of every cannot-link set CL(i) (a new set each call): relaxed >= 0 removes the j
   with D[i, j] <= eps * relaxed (and i); relaxed < 0 removes the j with D[i, j] > eps * |relaxed|
   (and i), i.e. keeps the constraints inside the eps * |relaxed| ball only.
3. Points in index order (a Python set of 0..N-1); an unclassified point p seeds a cluster
   whose constraint set U is *p's own cannot-link set object* (grown in place); while seeds
   remain, the first of the seed set (Python set order) c expands when
   |N(c) - CL(c) - U| >= min_samples, absorbing every unclassified q of that set not in U
   (U |= CL(q)). A cluster smaller than min_samples is dissolved back to unclassified; what is
   left at the end is noise (-1). Clusters are numbered in the order they are found.

Faithful side effects: U is the seed's own set, mutated in place (also for dissolved
clusters), and the object keeps its cannot-link sets between calls, so constraints grow from
epoch to epoch. ``state()`` / ``from_state`` carry them across a resumed run.
"""

from __future__ import annotations

import numpy as np

UNCLASSIFIED = -2
NOISE = -1


class ICDBSCAN:
    def __init__(self, eps: float, min_samples: int, cannotlink_pts, relaxed: float = 0.0):
        self.eps = float(eps)
        self.min_samples = int(min_samples)
        self.cannotlink_pts = [set(s) for s in cannotlink_pts]
        self.relaxed = float(relaxed)

    def _neighbours(self, D: np.ndarray) -> list[set]:
        out = []
        for i in range(D.shape[0]):
            nb = set(np.flatnonzero(D[i] <= self.eps).tolist())
            nb.add(i)
            out.append(nb)
        return out

    def _relax(self, D: np.ndarray) -> None:
        for i in range(D.shape[0]):
            if self.relaxed >= 0.0:
                drop = set(np.flatnonzero(D[i] <= self.eps * self.relaxed).tolist())
            else:
                drop = set(np.flatnonzero(D[i] > self.eps * -self.relaxed).tolist())
            drop.add(i)
            self.cannotlink_pts[i] = self.cannotlink_pts[i] - drop

    def fit_predict(self, D) -> np.ndarray:
        D = np.asarray(D)
        n = D.shape[0]
        if len(self.cannotlink_pts) != n:
            raise ValueError(
                f"ICDBSCAN has cannot-link sets for {len(self.cannotlink_pts)} samples but the "
                f"distance matrix has {n}"
            )
        neighbours = self._neighbours(D)
        self._relax(D)
        labels = np.full(n, UNCLASSIFIED, dtype=np.int64)
        cluster = 0
        for p in set(range(n)):
            if labels[p] == UNCLASSIFIED and self._expand(p, cluster, labels, neighbours):
                cluster += 1
        labels[labels == UNCLASSIFIED] = NOISE
        return labels

    def _expand(self, p: int, cluster: int, labels: np.ndarray, neighbours) -> bool:
        members = {p}
        seeds = {p}
        labels[p] = cluster
        constraints = self.cannotlink_pts[p]  # the seed's own set, grown in place (original)
        while seeds:
            c = next(iter(seeds))
            candidates = neighbours[c] - self.cannotlink_pts[c] - constraints
            if len(candidates) >= self.min_samples:
                for q in candidates:
                    if labels[q] == UNCLASSIFIED and q not in constraints:
                        labels[q] = cluster
                        members.add(q)
                        constraints.update(self.cannotlink_pts[q])
                        seeds.add(q)
            seeds.remove(c)
        if len(members) < self.min_samples:
            for q in members:
                labels[q] = UNCLASSIFIED
            return False
        return True

    def state(self) -> list[list[int]]:
        return [sorted(s) for s in self.cannotlink_pts]
