"""Clustering: Jaccard distance + DBSCAN at three radii, and CDSM's reliability criterion."""
from .dbscan import Clustering, cluster_features, run_dbscan
from .reliability import Reliability, iou_per_sample, reliability, with_singletons

__all__ = ["Clustering", "cluster_features", "run_dbscan", "Reliability", "iou_per_sample",
           "reliability", "with_singletons"]
