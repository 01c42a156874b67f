"""AuxUSL's losses, one file each, and the builders for ID_OPTION / TRI_OPTION.

total = (1 - CE_SOFT_WRIGHT) * L_id + (1 - TRI_SOFT_WRIGHT) * L_tri
        + CE_SOFT_WRIGHT * L_softCE + TRI_SOFT_WRIGHT * L_softTri      (0.5 / 0.2 / 0.5 / 0.8)
"""

from __future__ import annotations

from .cross_entropy import CrossEntropyLoss
from .label_smooth import CrossEntropyLabelSmooth
from .rlsce import CrossEntropyLabelSmoothK
from .soft_entropy import SoftEntropy
from .soft_triplet import SoftTripletLoss
from .triplet import SoftMarginTripletLoss, batch_hard, euclidean_dist
from .watl import WeightAdaptiveTripletLoss


def build_id_loss(option: int, num_clusters: int, epsilon: float = 0.1, K: int = 4, neighbour_map=None):
    if option == 1:
        return CrossEntropyLoss()
    if option == 2:
        return CrossEntropyLabelSmooth(num_clusters, epsilon)
    if option == 3:
        if neighbour_map is None:
            raise ValueError("RLSCE needs the cluster neighbour map")
        return CrossEntropyLabelSmoothK(neighbour_map, K, epsilon)
    raise ValueError(f"MODEL.LOSSES.ID_OPTION must be 1 (CE), 2 (LSCE) or 3 (RLSCE), got {option}")


def build_triplet_loss(option: int, margin: float = 0.5, lambda_value: float = -1.0):
    if option == 1:
        return SoftMarginTripletLoss()
    if option == 2:
        return WeightAdaptiveTripletLoss(margin, lambda_value)
    raise ValueError(f"MODEL.LOSSES.TRI_OPTION must be 1 (TL) or 2 (WATL), got {option}")


__all__ = [
    "CrossEntropyLoss",
    "CrossEntropyLabelSmooth",
    "CrossEntropyLabelSmoothK",
    "SoftEntropy",
    "SoftTripletLoss",
    "SoftMarginTripletLoss",
    "WeightAdaptiveTripletLoss",
    "batch_hard",
    "euclidean_dist",
    "build_id_loss",
    "build_triplet_loss",
]
