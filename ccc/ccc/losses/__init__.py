"""Losses, one file each: ClusterNCE and its camera-entropy (CIE) weighting."""
from .camera_entropy import camera_entropy_loss, camera_entropy_weights
from .cluster_nce import cluster_nce

__all__ = ["camera_entropy_loss", "camera_entropy_weights", "cluster_nce"]
