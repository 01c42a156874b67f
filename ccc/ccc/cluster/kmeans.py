"""k-means, 3C's K-means variant (``main_kmeans.py``): scikit-learn ``KMeans(K, init="k-means++",
n_init="auto")`` on the raw features (not the Jaccard distance). The original passes no
random_state, so its draws come from numpy's global RNG (seeded with --seed once); here each
epoch gets its own seed derived from --seed and the epoch (reproducible across resumes).
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from ..errors import ClusteringError


def kmeans_labels(features, n_clusters: int, seed: int | None = None):
    """(labels, centroids) of k-means with K = n_clusters."""
    X = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    if n_clusters > len(X):
        raise ClusteringError(f"--num-clusters {n_clusters} is larger than the number of training samples "
                              f"({len(X)}): k-means cannot form that many clusters; use at most {len(X)}")
    km = KMeans(n_clusters=n_clusters, init="k-means++", n_init="auto", random_state=seed).fit(X)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)
