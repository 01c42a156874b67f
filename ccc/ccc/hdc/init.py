"""HDC's initialisations (``--hdc-init``): "k-means++2" (3C's default), "k-means++", "random".

Every one draws from the ``numpy.random.RandomState`` it is given. The original passes a fresh,
unseeded ``RandomState()`` to "k-means++2" (and the global RNG to "random"), so its clustering
is not reproducible even with ``--seed``; here the caller seeds it (a documented deviation).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.cluster import kmeans_plusplus as _sklearn_kmeans_plusplus

from .distances import get_distances

INITS = ("k-means++2", "k-means++", "random")


def kmeans_plusplus2(X, n_clusters: int, xx_dist, random_state: np.random.RandomState,
                     n_local_trials: int | None = None):
    """Greedy k-means++ seeding driven by a precomputed N x N distance (the Jaccard matrix).

    The first seed is uniform; every further seed is the best of L = 2 + floor(ln K) candidates
    drawn with probability proportional to the current closest distance (inverse CDF on a float64
    cumulative sum), "best" meaning the smallest potential sum_i min(closest_i, d(cand, i)). The
    distance is used as it is, where k-means++ would square it (as 3C codes it).

    xx_dist: dense N x N, or a scipy sparse CSR whose pairs not stored have distance 1 (its rows
    and columns are read as the dense matrix's: same seeds and labels).

    Returns (centroids = X[seeds], labels = argmin over seeds of xx_dist[i, seed] (first index
    on ties), seed indices).
    """
    X = np.asarray(X)
    n = X.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    indices = np.full(n_clusters, -1, dtype=np.int64)
    indices[0] = random_state.randint(n)
    rows, columns = ((_sparse_rows, _sparse_columns) if sparse.issparse(xx_dist)
                     else (_dense_rows, _dense_columns))
    closest = rows(xx_dist, indices[0])
    potential = closest.sum()
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * potential
        candidates = np.searchsorted(np.cumsum(closest, dtype=np.float64), rand_vals)
        np.clip(candidates, None, n - 1, out=candidates)  # float round-off can overshoot
        to_candidates = rows(xx_dist, candidates)      # a copy (fancy indexing)
        np.minimum(closest, to_candidates, out=to_candidates)
        potentials = to_candidates.sum(axis=1)
        best = int(np.argmin(potentials))
        potential = potentials[best]
        closest = to_candidates[best]
        indices[c] = candidates[best]
    labels = columns(xx_dist, indices).argmin(axis=1).astype(np.int32)
    return X[indices].copy(), labels, indices


def _dense_rows(d, idx):
    return d[idx]


def _dense_columns(d, idx):
    return d[:, idx]


def _sparse_rows(d, idx):
    """d[idx] of a CSR as the dense rows it stands for (1 where nothing is stored)."""
    single = np.ndim(idx) == 0
    idx = np.atleast_1d(idx)
    out = np.ones((len(idx), d.shape[1]), dtype=np.float32)
    for r, i in enumerate(idx):
        a, b = d.indptr[i], d.indptr[i + 1]
        out[r, d.indices[a:b]] = d.data[a:b]
    return out[0] if single else out


def _sparse_columns(d, idx):
    """d[:, idx] of a CSR as dense columns (1 where nothing is stored)."""
    sub = d[:, idx].tocoo()
    out = np.ones((d.shape[0], len(idx)), dtype=np.float32)
    out[sub.row, sub.col] = sub.data
    return out


def kmeans_plusplus(X, n_clusters: int, random_state: np.random.RandomState,
                    similarity: str = "Euler Cosine"):
    """k-means++ seeding on the features themselves. The original calls daal4py's (Intel
    scikit-learn-intelex) private seeding; here scikit-learn's ``kmeans_plusplus`` does the same
    job (same algorithm family, a different random stream). Labels: nearest seed under the HDC
    similarity."""
    X = np.asarray(X, dtype=np.float32)
    centers, indices = _sklearn_kmeans_plusplus(X, n_clusters, random_state=random_state)
    labels = get_distances(X, centers, similarity).argmin(axis=1).astype(np.int32)
    return centers.astype(np.float32), labels, indices


def random_init(X, n_clusters: int, random_state: np.random.RandomState, normalize: bool = False):
    """Uniform random labels; centroids = member means (NaN for a cluster left empty, as there)."""
    from .hdc import cluster_centroids

    X = np.asarray(X, dtype=np.float32)
    labels = random_state.randint(0, n_clusters, X.shape[0], dtype=np.int32)
    return cluster_centroids(X, labels, n_clusters, normalize), labels, None
