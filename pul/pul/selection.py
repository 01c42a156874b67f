"""k-means on the target features and the reliable-image selection (spec A6 steps 3-7).

Two selection rules, the code's as default:

* ``"code"`` (PUL/unsupervised.py): for each cluster k the *centre image* s_k is the training
  image nearest (Euclidean) to the centroid c_k; an image i is reliable if its cosine similarity
  to **any** centre image exceeds lambda; it keeps its **own** k-means label y_i. Every centre
  image is reliable (similarity 1 with itself).
* ``"paper"`` (the paper's self-paced formulation): i is reliable iff cos(f_i, c_{y_i}) > lambda,
  the similarity to the centroid of its own cluster.

k-means runs on the raw (not normalised) features, scikit-learn ``KMeans`` with the defaults of
the original's time (k-means++, n_init=10, max_iter=300, tol=1e-4; scikit-learn >= 1.4 would use
n_init='auto', so it is passed explicitly) and, unlike the original, a seed.

``method="faiss"`` (``--kmeans faiss``, not the original's) keeps scikit-learn's seeding and runs
the Lloyd iterations in faiss: for each of the n_init restarts, scikit-learn's greedy k-means++
(``sklearn.cluster.kmeans_plusplus``, KMeans' own initialisation) picks K centres, then
``faiss.Kmeans`` (``niter`` = max_iter; it stops once the assignment no longer changes) refines
them from there; the restart with the lowest objective is kept, as n_init does. The seeding runs
on the float64 features as in the default path, the Lloyd iterations in float32, on every point
(no subsampling). The distances to the centroids (for the centre images)
and the labels are then computed from the centroids in float64, as scikit-learn's
``transform``/``labels_`` are. See ../README.md for its label agreement with scikit-learn and its
speed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import PULError

RULES = ("code", "paper")
KMEANS_METHODS = ("sklearn", "faiss")


class SelectionError(PULError):
    """Clustering or selection cannot proceed (the message says why and what to change)."""


@dataclass
class Clustering:
    centroids: np.ndarray    # (K, D)
    labels: np.ndarray       # (N,) in 0..K-1
    distances: np.ndarray    # (N, K) Euclidean distance of every image to every centroid
    inertia: float
    n_iter: int


@dataclass
class Selection:
    indices: np.ndarray      # reliable images, ascending
    labels: np.ndarray       # their k-means labels (the pseudo-labels), aligned with indices
    centre_images: np.ndarray  # (K,) index of the image nearest each centroid
    similarity: np.ndarray   # (N,) the similarity the rule thresholds (max over centres / own centroid)
    rule: str
    lam: float

    @property
    def num_selected(self) -> int:
        return int(len(self.indices))

    @property
    def num_clusters_used(self) -> int:
        return int(len(np.unique(self.labels)))


def _check_features(features) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0:
        raise SelectionError(f"features must be a non-empty (N, D) array, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise SelectionError("the features contain NaN or inf (the model diverged?); cannot cluster them")
    return f


def kmeans(features, num_clusters: int, seed: int | None = 0, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-4, method: str = "sklearn") -> Clustering:
    """k-means with K = num_clusters on the raw features (method: 'sklearn', the original's, or
    'faiss'; see the module docstring)."""
    if method not in KMEANS_METHODS:
        raise SelectionError(f"unknown k-means method {method!r}; valid: {', '.join(KMEANS_METHODS)}")
    f = _check_features(features)
    n = f.shape[0]
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, (int, np.integer)) or num_clusters < 1:
        raise SelectionError(f"the number of clusters K must be a positive integer, got {num_clusters!r}")
    if num_clusters > n:
        raise SelectionError(f"K = {num_clusters} clusters but only {n} images to cluster; k-means needs "
                             f"K <= {n}. Lower --num-clusters (the original sets K near the number of "
                             "identities of the target training set)")
    if method == "faiss":
        return _kmeans_faiss(f, int(num_clusters), seed, n_init, max_iter)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=int(num_clusters), init="k-means++", n_init=n_init, max_iter=max_iter, tol=tol,
                random_state=seed)
    km.fit(f)
    return Clustering(centroids=km.cluster_centers_, labels=km.labels_.astype(np.int64),
                      distances=km.transform(f), inertia=float(km.inertia_), n_iter=int(km.n_iter_))


def centroid_distances(features: np.ndarray, centroids: np.ndarray, block: int = 4096) -> np.ndarray:
    """(N, K) Euclidean distances in float64, by blocks of rows."""
    f = np.asarray(features, dtype=np.float64)
    c = np.asarray(centroids, dtype=np.float64)
    c2 = (c * c).sum(axis=1)
    out = np.empty((len(f), len(c)))
    for s in range(0, len(f), block):
        x = f[s:s + block]
        d2 = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ c.T) + c2[None, :]
        out[s:s + block] = np.sqrt(np.maximum(d2, 0.0))
    return out


def _kmeans_faiss(f: np.ndarray, k: int, seed: int | None, n_init: int, max_iter: int) -> Clustering:
    try:
        import faiss
    except ImportError:
        raise SelectionError("--kmeans faiss needs the faiss package (pip install faiss-cpu, or faiss-gpu "
                             "on a GPU machine); the default --kmeans sklearn needs nothing more") from None
    from sklearn.cluster import kmeans_plusplus
    from sklearn.utils import check_random_state

    x = np.ascontiguousarray(f, dtype=np.float32)   # faiss computes in float32
    rng = check_random_state(seed)                  # one stream for the n_init seedings, as KMeans draws them
    best = None
    for _ in range(int(n_init)):
        init, _ = kmeans_plusplus(f, k, random_state=rng)    # scikit-learn's greedy k-means++ (float64)
        km = faiss.Kmeans(x.shape[1], k, niter=int(max_iter), nredo=1, seed=int(rng.randint(2**31 - 1)),
                          max_points_per_centroid=max(1, -(-len(x) // k)), min_points_per_centroid=1,
                          verbose=False, spherical=False)
        objective = km.train(x, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
        if best is None or objective < best[0]:
            best = (objective, np.array(km.centroids, dtype=np.float64).reshape(k, x.shape[1]), len(km.obj))
    _, centroids, n_iter = best
    distances = centroid_distances(f, centroids)
    labels = distances.argmin(axis=1).astype(np.int64)
    inertia = float((distances[np.arange(len(f)), labels] ** 2).sum())
    return Clustering(centroids=centroids, labels=labels, distances=distances, inertia=inertia,
                      n_iter=int(n_iter))


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)  # a zero vector has similarity 0


def select_reliable(features, clustering: Clustering, lam: float = 0.85, rule: str = "code",
                    block: int = 4096) -> Selection:
    """The reliable images and their pseudo-labels (see the module docstring for the two rules)."""
    if rule not in RULES:
        raise SelectionError(f"unknown selection rule {rule!r}; valid: {', '.join(RULES)}")
    f = _check_features(features)
    labels = np.asarray(clustering.labels, dtype=np.int64)
    if len(labels) != f.shape[0] or clustering.distances.shape[0] != f.shape[0]:
        raise SelectionError("the clustering does not belong to these features (different image counts)")
    centre_images = np.argmin(clustering.distances, axis=0)  # nearest image to each centroid
    fn = _normalise(f)
    if rule == "code":
        centres = fn[centre_images]                           # (K, D)
        sim = np.full(f.shape[0], -np.inf)
        for s in range(0, f.shape[0], block):                 # K x N in blocks: max over centres
            sim[s:s + block] = (centres @ fn[s:s + block].T).max(axis=0)
    else:
        cn = _normalise(np.asarray(clustering.centroids, dtype=np.float64))
        sim = np.einsum("ij,ij->i", fn, cn[labels])
    keep = np.flatnonzero(sim > lam)
    if len(keep) == 0:
        raise SelectionError(f"no reliable image: no cosine similarity exceeds lambda = {lam} (rule "
                             f"'{rule}', highest {sim.max():.4f}); lower --lambda")
    return Selection(indices=keep, labels=labels[keep], centre_images=centre_images, similarity=sim,
                     rule=rule, lam=float(lam))


def one_hot(labels, num_classes: int) -> np.ndarray:
    """One-hot rows of width num_classes (the original's to_categorical lacked num_classes, which
    mis-sized the labels whenever the highest cluster had no reliable image)."""
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise SelectionError(f"labels must lie in 0..{num_classes - 1}")
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out
