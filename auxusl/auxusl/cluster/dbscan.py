"""Pseudo-labels: (IC)DBSCAN on the clustering distance, with the eps of the first epoch.

The original creates its DBSCAN (or ICDBSCAN) object once, at the first epoch of the process,
with eps either fixed (CLUSTER.EPS) or adaptive (``adaptive_eps``), and reuses it in every
later epoch: eps is never re-estimated. ``ClusterState`` is that object's state (eps and, for
ICDBSCAN, the grown cannot-link sets); a resumed run restores it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN

from ..errors import NoClusterError
from .icdbscan import ICDBSCAN


@dataclass
class ClusterState:
    eps: float
    min_samples: int
    constrained: bool = False
    relaxed: float = 0.0
    cannotlinks: list | None = field(default=None, repr=False)  # ICDBSCAN's current sets

    def as_dict(self) -> dict:
        return {
            "eps": self.eps,
            "min_samples": self.min_samples,
            "constrained": self.constrained,
            "relaxed": self.relaxed,
            "cannotlinks": self.cannotlinks,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClusterState:
        return cls(
            float(d["eps"]),
            int(d["min_samples"]),
            bool(d["constrained"]),
            float(d["relaxed"]),
            d.get("cannotlinks"),
        )


def run_clustering(D, state: ClusterState, epoch: int | None = None) -> np.ndarray:
    """Labels (-1 = noise) of the samples; updates ``state.cannotlinks`` for ICDBSCAN."""
    if state.constrained:
        dense = densify(D)
        model = ICDBSCAN(state.eps, state.min_samples, state.cannotlinks, state.relaxed)
        labels = model.fit_predict(dense)
        state.cannotlinks = model.state()
    else:
        if sparse.issparse(D) and state.eps >= 1.0:
            D = densify(D)  # absent pairs (distance 1) become neighbours at eps >= 1
        labels = DBSCAN(
            eps=state.eps, min_samples=state.min_samples, metric="precomputed", n_jobs=-1
        ).fit_predict(D)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.max(initial=-1) < 0:
        at = f" at epoch {epoch}" if epoch is not None else ""
        kind = "ICDBSCAN" if state.constrained else "DBSCAN"
        raise NoClusterError(
            f"{kind} (eps {state.eps:.4f}, min_samples {state.min_samples}) found no cluster among the "
            f"{len(labels)} training tracklets{at}: every tracklet is an outlier. The median distance of a "
            f"tracklet to its {state.min_samples}th neighbour is "
            f"{kth_neighbour_median(D, state.min_samples):.3f}; "
            "set CLUSTER.EPS towards it with CLUSTER.ADAPTIVE False (or raise CLUSTER.ADAPTIVE_RHO), "
            "or lower "
            "CLUSTER.MIN_SAMPLES"
        )
    return labels


def densify(D) -> np.ndarray:
    """A dense float32 copy of a sparse Jaccard distance (absent entries = 1)."""
    if not sparse.issparse(D):
        return np.asarray(D, dtype=np.float32)
    C = sparse.csr_matrix(D)
    out = np.ones(C.shape, dtype=np.float32)
    out[np.repeat(np.arange(C.shape[0]), np.diff(C.indptr)), C.indices] = C.data
    return out


def kth_neighbour_median(D, k: int) -> float:
    kth = []
    if sparse.issparse(D):
        d = sparse.csr_matrix(D)
        for i in range(d.shape[0]):
            row = np.sort(d.data[d.indptr[i] : d.indptr[i + 1]])
            kth.append(row[k - 1] if len(row) >= k else 1.0)
    else:
        A = np.asarray(D)
        part = np.sort(A, axis=1)
        kth = part[:, min(k - 1, A.shape[1] - 1)]
    return float(np.median(kth))
