"""DBSCAN on the Jaccard distance: 3C's warm-up (``--warmup-with-dbscan``, the first
``--warmup-iters`` epochs) and its DBSCAN variant (``main_dbscan.py``, every epoch).

``sklearn.cluster.DBSCAN(eps=--dbscan-eps, min_samples=--cluster-min-instances,
metric="precomputed")``; label -1 = outlier, clusters numbered in order of discovery. DBSCAN
reads only the pairs within eps (d <= eps); the sparse Jaccard matrix it gets keeps exactly those
(``jaccard_distance(..., cutoff=eps)`` in examples/train.py), so the labels are those of the full
matrix (README, "Deviations from the original code").
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN

from ..errors import NoClusterError


def neighbour_distance_hint(dist, min_samples: int) -> float:
    """The median distance of an image to its min_samples-th neighbour (itself included): the
    smallest eps at which half the images would be DBSCAN core samples."""
    d = sparse.csr_matrix(dist)
    kth = []
    for i in range(d.shape[0]):
        row = np.sort(d.data[d.indptr[i]:d.indptr[i + 1]])
        kth.append(row[min_samples - 1] if len(row) >= min_samples else 1.0)
    return float(np.median(kth))


def dbscan_labels(dist, eps: float = 0.6, min_samples: int = 4, n_jobs: int | None = None,
                  epoch: int | None = None, full_distance=None) -> np.ndarray:
    """DBSCAN pseudo-labels of a precomputed (sparse) Jaccard matrix; NoClusterError when every
    image is an outlier. ``full_distance``: when ``dist`` keeps only the entries <= eps, a
    function returning the uncut matrix, called only for the error's neighbour-distance hint."""
    if sparse.issparse(dist) and not 0 < eps < 1:
        raise ValueError(f"--dbscan-eps must be in (0, 1) for the Jaccard distance, got {eps}")
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed",
                    n_jobs=n_jobs).fit_predict(dist).astype(np.int64)
    if labels.max(initial=-1) < 0:
        full = dist if full_distance is None else full_distance()
        at = f" at epoch {epoch}" if epoch is not None else ""
        raise NoClusterError(
            f"DBSCAN (eps {eps}, min_samples {min_samples}) found no cluster among the {len(labels)} "
            f"training images{at}: every image is an outlier. The median Jaccard distance of an image "
            f"to its {min_samples}th neighbour is {neighbour_distance_hint(full, min_samples):.3f}; raise "
            "--dbscan-eps towards it or lower --cluster-min-instances")
    return labels
