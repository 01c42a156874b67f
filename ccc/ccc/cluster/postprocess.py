"""From a clustering to the memory's centroids (3C's ``MemoryTable.update_labels`` and
``generate_cluster_features``; spec 3.4).

* ``remove_small_clusters``: clusters with fewer than ``min_instances`` (``--cluster-min-instances``,
  4) non-outlier members become outliers; the others are renumbered 0..C'-1 in their order, and
  their centroids kept in that order. (The original counts the labels present; a cluster id
  with no member at all, which HDC's relocation and k-means never leave, is dropped too.)
* ``member_means``: the mean feature of each cluster 0..C-1 (DBSCAN, and HDC without
  ``--hdc-centroids``).
The memory is then L2norm(centroids).
"""
from __future__ import annotations

import numpy as np


def remove_small_clusters(labels, centroids, min_instances: int | None = 4):
    """(labels with -1 and 0..C'-1, centroids of the kept clusters in order, C')."""
    labels = np.asarray(labels, dtype=np.int64)
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = ids if min_instances is None else ids[counts >= min_instances]
    new_id = np.full(int(labels.max(initial=-1)) + 2, -1, dtype=np.int64)   # never empty
    new_id[keep] = np.arange(len(keep))
    out = np.where(labels >= 0, new_id[np.maximum(labels, 0)], -1)
    kept = np.asarray(centroids)[keep] if centroids is not None else None
    return out, kept, len(keep)


def member_means(features, labels, num_clusters: int) -> np.ndarray:
    """Mean feature of the members of each cluster 0..C-1 (float32)."""
    X = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels)
    out = np.zeros((num_clusters, X.shape[1]), dtype=np.float32)
    for c in range(num_clusters):
        members = X[labels == c]
        if len(members) == 0:
            raise ValueError(f"cluster {c} has no member")
        out[c] = members.mean(axis=0)
    return out
