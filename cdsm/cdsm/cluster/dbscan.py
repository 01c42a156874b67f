"""Pseudo-labels: k-reciprocal Jaccard distance, then DBSCAN at eps (and eps -+ gap for CDSM).

The Jaccard distance comes from ``common_eval.jaccard_distance`` (SpCL's algorithm, sparse: an
absent entry means distance 1), which goes straight into
``sklearn.cluster.DBSCAN(metric="precomputed")``. Only the entries at or below the largest radius
of the epoch (eps, or eps + gap) are kept (``cutoff``): DBSCAN's neighbourhoods are d <= eps, so
the labels are those of the full matrix (tested), and the matrix holds what DBSCAN can use
instead of nearly every pair when clusters are smaller than k1.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN

from common_eval import jaccard_distance

from ..errors import NoClusterError

log = logging.getLogger(__name__)


@dataclass
class Clustering:
    labels: np.ndarray                 # (N,) pseudo-labels at eps, -1 = outlier
    core_indices: np.ndarray           # DBSCAN core samples at eps (ascending)
    labels_tight: np.ndarray | None    # at eps - gap (None when not needed)
    labels_loose: np.ndarray | None    # at eps + gap

    @property
    def num_clusters(self) -> int:
        return int(self.labels.max(initial=-1)) + 1

    @property
    def num_outliers(self) -> int:
        return int((self.labels < 0).sum())


def count(labels) -> tuple[int, int]:
    labels = np.asarray(labels)
    return int(labels.max(initial=-1)) + 1, int((labels < 0).sum())


def run_dbscan(dist, eps: float, min_samples: int, n_jobs: int | None = -1):
    """DBSCAN on a precomputed (sparse or dense) distance matrix: (labels, core indices)."""
    if not 0 < eps < 1 and sparse.issparse(dist):
        raise ValueError(f"eps must be in (0, 1) for the sparse Jaccard distance, got {eps}")
    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=n_jobs).fit(dist)
    return model.labels_.astype(np.int64), np.asarray(model.core_sample_indices_, dtype=np.int64)


def neighbour_distance_hint(dist, min_samples: int) -> str:
    """The median distance of an image to its min_samples-th neighbour (itself included), i.e.
    the smallest eps at which half the images would be DBSCAN core samples."""
    d = sparse.csr_matrix(dist)  # rows hold the diagonal (0) and every pair sharing support
    kth = []
    for i in range(d.shape[0]):
        row = np.sort(d.data[d.indptr[i]:d.indptr[i + 1]])
        kth.append(row[min_samples - 1] if len(row) >= min_samples else 1.0)
    return f"{float(np.median(kth)):.3f}"


def cluster_features(features: np.ndarray, eps: float, min_samples: int = 4, k1: int = 30, k2: int = 6,
                     eps_gap: float | None = 0.02, n_jobs: int | None = -1,
                     epoch: int | None = None) -> Clustering:
    """Jaccard distance of L2-normalised features, DBSCAN at eps (and eps -+ eps_gap unless
    eps_gap is None). NoClusterError when DBSCAN at eps finds no cluster."""
    if eps_gap is not None and not 0 < eps - eps_gap:
        raise ValueError(f"eps - eps_gap must be positive, got eps {eps} and gap {eps_gap}")
    if eps_gap is not None and eps + eps_gap >= 1:
        raise ValueError(f"eps + eps_gap must be below 1 (the largest Jaccard distance), got "
                         f"{eps + eps_gap}")
    features = np.ascontiguousarray(features, dtype=np.float32)
    largest = eps + eps_gap if eps_gap is not None else eps
    dist = jaccard_distance(features, k1=k1, k2=k2, cutoff=largest)
    labels, core = run_dbscan(dist, eps, min_samples, n_jobs)
    if labels.max(initial=-1) < 0:
        full = jaccard_distance(features, k1=k1, k2=k2)  # the hint needs the distances beyond eps
        at = f" at epoch {epoch}" if epoch is not None else ""
        raise NoClusterError(
            f"DBSCAN (eps {eps}, min_samples {min_samples}) found no cluster among the "
            f"{len(labels)} training images{at}: every image is an outlier. The median Jaccard "
            f"distance of an image to its {min_samples}th neighbour is "
            f"{neighbour_distance_hint(full, min_samples)}; raise --eps towards it or lower "
            "--min-samples (the training set may also be too small for min_samples)")
    tight = loose = None
    if eps_gap is not None:
        tight, _ = run_dbscan(dist, eps - eps_gap, min_samples, n_jobs)
        loose, _ = run_dbscan(dist, eps + eps_gap, min_samples, n_jobs)
    return Clustering(labels, core, tight, loose)
