from __future__ import annotations

import numpy as np


class Euclidean:
    """The identity metric: transform(X) = X."""

    def fit(self, X, y=None):
        self.components_ = np.eye(np.asarray(X).shape[1])
        return self

    def transform(self, X):
        return np.asarray(X)
