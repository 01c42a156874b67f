"""Sample-to-centroid distances of HDC (the original's ``HDC/distances.py``), normalised.

"Euler cosine", as 3C codes it: map every coordinate to z(x) = exp(i * alpha * pi * x) / sqrt(2)
(complex64, alpha = 1.9) and take

    D(x, c) = | sum_t z(x_t)^2 + sum_t z(c_t)^2 - 2 sum_t z(x_t) z(c_t) |
            = | sum_t (z(x_t) - z(c_t))^2 |

*without* complex conjugation. This is not the textbook Euler-cosine distance
sum_t |z(x_t) - z(c_t)|^2 (spec 3.3 and 6: whether it was intended is unknown); it is
reproduced as written, in complex64, through one complex matrix product (BLAS cgemm).

``get_distances`` normalises as the original: "Cosine" (sklearn's cosine distance) by 2, the
others ("Euclidean", "Euler Cosine") by the maximum of the whole matrix (NaN propagates, as
numpy's ``max`` does there).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics.pairwise import cosine_distances, euclidean_distances

SIMILARITIES = ("Euler Cosine", "Euclidean", "Cosine")
ALPHA = 1.9
_SQRT_HALF = np.complex64(1.0 / np.sqrt(2.0))


BLOCK_ROWS = 4096   # rows per block of the elementwise steps (same values, bounded temporaries)


def euler_map(X, alpha: float = ALPHA) -> np.ndarray:
    """z(X) = exp(i alpha pi X) / sqrt(2), elementwise, complex64 (the original's ``_complex``),
    written block of rows after block (the temporaries of a block, not of all N x d)."""
    X = np.asarray(X, dtype=np.float32)
    scale = np.float32(alpha * np.pi)
    z = np.empty(X.shape, dtype=np.complex64)
    if X.ndim < 2:
        phase = scale * X
        z[...] = np.cos(phase) + 1j * np.sin(phase)
    else:
        for a in range(0, X.shape[0], BLOCK_ROWS):
            phase = scale * X[a:a + BLOCK_ROWS]
            z[a:a + BLOCK_ROWS] = np.cos(phase) + 1j * np.sin(phase)
    z *= _SQRT_HALF
    return z


class EulerMap:
    """z(X) and sum_t z(X_t)^2 of a fixed set of rows (the samples, reused at every iteration)."""

    def __init__(self, X, alpha: float = ALPHA):
        self.alpha = alpha
        self.z = euler_map(X, alpha)
        n = self.z.shape[0]
        self.sq = np.empty(n, dtype=np.complex64)
        for a in range(0, n, BLOCK_ROWS):      # each row's sum as over the whole N x d array
            self.sq[a:a + BLOCK_ROWS] = np.square(self.z[a:a + BLOCK_ROWS]).sum(axis=1)


def euler_cosine_distances(X, Y, alpha: float = ALPHA, x_map: EulerMap | None = None) -> np.ndarray:
    """|sum_t z(x_t)^2 + sum_t z(y_t)^2 - 2 z(x).z(y)| for every pair (float32, N x M)."""
    xm = x_map if x_map is not None else EulerMap(X, alpha)
    zy = euler_map(Y, alpha)
    sy = np.square(zy).sum(axis=1)
    D = xm.sq[:, None] + sy[None, :] - 2 * (xm.z @ zy.T)
    return np.abs(D)


def euler_cosine_row_blocks(X, Y, alpha: float = ALPHA, x_map: EulerMap | None = None,
                            block_rows: int = 4096):
    """(first row, rows) of ``euler_cosine_distances(X, Y)`` block after block of ``block_rows``
    rows: the same values, holding neither the N x M complex product nor its temporaries. Each
    block's product is the same BLAS call on fewer rows: OpenBLAS splits a product over rows and
    columns, never over the summed dimension, so every entry is the same sum in the same order
    (``tests/ccc/test_hdc.py`` checks the bits against the whole product)."""
    xm = x_map if x_map is not None else EulerMap(X, alpha)
    zy = euler_map(Y, alpha)
    sy = np.square(zy).sum(axis=1)
    zyt = zy.T
    for a in range(0, xm.z.shape[0], block_rows):
        b = a + block_rows
        yield a, np.abs(xm.sq[a:b, None] + sy[None, :] - 2 * (xm.z[a:b] @ zyt))


def get_distances(X, Y, similarity: str = "Euler Cosine", norm: bool = True,
                  x_map: EulerMap | None = None) -> np.ndarray:
    """The normalised distance matrix of HDC (``--hdc-similarity``)."""
    if similarity == "Euler Cosine":
        d = euler_cosine_distances(X, Y, x_map=x_map)
    elif similarity == "Euclidean":
        d = euclidean_distances(np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32))
    elif similarity == "Cosine":
        d = cosine_distances(np.asarray(X, dtype=np.float32), np.asarray(Y, dtype=np.float32))
    else:
        raise ValueError(f"unknown HDC similarity {similarity!r}; valid: {', '.join(SIMILARITIES)}")
    if not norm:
        return d
    if similarity == "Cosine":
        return d / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return d / d.max()
