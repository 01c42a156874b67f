"""Open-ReID's DistanceMetric: a named metric, fitted on features and labels, transforming
features before the Euclidean ranking."""
from __future__ import annotations

import numpy as np

from .metric_learning import get_metric


class DistanceMetric:
    def __init__(self, algorithm: str = "euclidean", *args, **kwargs):
        self.algorithm = algorithm
        self.metric = get_metric(algorithm, *args, **kwargs)

    def train(self, features, labels) -> None:
        if self.algorithm == "euclidean":
            return
        self.metric.fit(np.asarray(features), np.asarray(labels))

    def transform(self, X):
        return np.ascontiguousarray(self.metric.transform(np.asarray(X)), dtype=np.float32)
