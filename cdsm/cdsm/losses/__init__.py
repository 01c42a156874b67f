"""Losses, one file each: ClusterNCE and CDSM's hybrid (central + marginal proxy) loss."""
from .cluster_nce import cluster_nce
from .hybrid_contrast import hybrid_contrast_loss, hybrid_logits

__all__ = ["cluster_nce", "hybrid_contrast_loss", "hybrid_logits"]
