"""Clustering: the Jaccard + SCP/STS distance, adaptive eps, DBSCAN/ICDBSCAN, RLSCE neighbours."""

from .dbscan import ClusterState, densify, kth_neighbour_median, run_clustering
from .distance import adaptive_eps, clustering_distance, sts_factor
from .icdbscan import ICDBSCAN
from .neighbours import neighbour_map

__all__ = [
    "ClusterState",
    "densify",
    "run_clustering",
    "kth_neighbour_median",
    "adaptive_eps",
    "clustering_distance",
    "sts_factor",
    "ICDBSCAN",
    "neighbour_map",
]
