"""Pseudo-labels: 3C's Jaccard distance, DBSCAN (warm-up / DBSCAN variant), k-means (K-means
variant) and the post-processing into the memory's centroids. HDC itself is ``ccc.hdc``."""
from .dbscan import dbscan_labels, neighbour_distance_hint
from .jaccard import jaccard_distance
from .kmeans import kmeans_labels
from .postprocess import member_means, remove_small_clusters

__all__ = ["dbscan_labels", "jaccard_distance", "kmeans_labels", "member_means", "neighbour_distance_hint",
           "remove_small_clusters"]
