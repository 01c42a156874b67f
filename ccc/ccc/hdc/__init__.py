"""HDC, harmonic discrepancy clustering (3C's clustering; spec 3.3), with its compiled kernels.

    from ccc.hdc import HDC
    hdc = HDC(n_clusters=750, max_iter=80, init="k-means++2").fit(X, jaccard, outlier=True, seed=...)
    hdc.labels_, hdc.cluster_centers_, hdc.confidences_, hdc.n_iter_
"""
from .distances import SIMILARITIES, euler_cosine_distances, get_distances
from .hdc import (
    HDC,
    assign_labels,
    cluster_centroids,
    discrepancy_matrix,
    harmonic_discrepancy,
    memberships,
    own_memberships,
    peripheral_object_detection,
    relocate_empty_clusters,
)
from .init import INITS, kmeans_plusplus, kmeans_plusplus2, random_init

__all__ = ["HDC", "SIMILARITIES", "INITS", "assign_labels", "cluster_centroids", "discrepancy_matrix",
           "euler_cosine_distances", "get_distances", "harmonic_discrepancy", "kmeans_plusplus",
           "kmeans_plusplus2", "memberships", "own_memberships", "peripheral_object_detection", "random_init",
           "relocate_empty_clusters"]
