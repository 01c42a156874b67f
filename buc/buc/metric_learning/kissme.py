"""KISSME (Koestinger et al., CVPR 2012), as Open-ReID offers it, written from the formula.

M = inv(C_same) - inv(C_diff), with C_same the covariance of differences of same-label pairs and
C_diff that of as many randomly drawn different-label pairs; M is then projected onto the
positive semi-definite cone (negative eigenvalues set to 0) so that ``transform`` can return
X @ L.T with M = L.T @ L. Differences from Open-ReID's version: a ridge ``reg * mean(diag(C)) I``
keeps the covariances invertible when the feature dimension exceeds the number of pairs (2048-d
features), pairs are enumerated per cluster (Open-ReID built an N x N meshgrid), and the PSD
repair clips eigenvalues (Open-ReID's loop took the minimum of the eigen*vectors*).
"""
from __future__ import annotations

import numpy as np


class KISSME:
    def __init__(self, reg: float = 1e-3, seed: int = 0):
        self.reg = reg
        self.seed = seed
        self.M_ = None

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        rng = np.random.default_rng(self.seed)
        same = [np.flatnonzero(y == lab) for lab in np.unique(y)]
        ia, ib = [], []
        for idx in same:
            if len(idx) > 1:
                a, b = np.triu_indices(len(idx), k=1)
                ia.append(idx[a])
                ib.append(idx[b])
        if not ia:
            raise ValueError("KISSME needs at least one cluster with two samples")
        ia, ib = np.concatenate(ia), np.concatenate(ib)
        n_same = len(ia)
        da = rng.integers(0, len(X), size=4 * n_same + 16)
        db = rng.integers(0, len(X), size=4 * n_same + 16)
        keep = y[da] != y[db]
        da, db = da[keep][:n_same], db[keep][:n_same]
        if len(da) == 0:
            raise ValueError("KISSME needs pairs with different labels")

        def cov(s):
            c = s.T @ s / len(s)
            return c + self.reg * max(np.mean(np.diag(c)), 1e-12) * np.eye(c.shape[0])

        M = np.linalg.inv(cov(X[ia] - X[ib])) - np.linalg.inv(cov(X[da] - X[db]))
        M = (M + M.T) / 2
        w, v = np.linalg.eigh(M)
        w = np.clip(w, 0, None)
        self.M_ = (v * w) @ v.T
        self.L_ = (v * np.sqrt(w)).T
        return self

    def transform(self, X):
        return (np.asarray(X, dtype=np.float64) @ self.L_.T).astype(np.float32)
