"""Spatio-temporal plausibility p_ij in [0, 1] for STS, estimated WITHOUT identity labels.

AuxUSL multiplies a distance by ``1 + lambda * exp(-gamma * p_ij)`` (lambda 0.6, gamma 8):
p = 0 makes a pair 1.6 times farther, p = 1 leaves it as it is. How the authors computed p is
not in their code (only stored matrices); this estimator is OUR design:

1. Every unordered pair of *training* tracklets (whole tracklets, never chunks of one) that do
   not overlap in time gets a cell: its camera pair {a, b} (a == b allowed) and the bin of
   its gap (seconds between the end of the earlier and the start of the later, on the common
   clock) on log2-spaced edges 0, 1, 2, 4, ... 4096 s, +inf.
2. obs[a, b, k]: how many pairs fall in each cell.
3. null[a, b, k]: how many would fall there by chance if the crowd were time-homogeneous
   (people arriving independently at a constant rate): the average over ``rounds`` draws in
   which every tracklet is moved to a uniformly random time within its camera's recording
   span, keeping its camera and duration. Identity links are what this destroys; a crowd whose
   density changes over the recording also departs from it (a limitation of the design).
4. share[a, b, k] = max(0, obs - null - 2 sqrt(null + 1)) / obs: the fraction of the cell's
   pairs in excess of chance (less a two-sigma Poisson allowance), an estimate of
   P(same person | cameras, gap), shrunk towards the same quantity pooled over camera pairs
   with ``prior`` pseudo-pairs (sparse camera pairs lean on the pooled gap profile).
5. p = share / max(share): plausibility relative to the most plausible (camera pair, gap),
   so that the formula's whole range is used (as a normalised histogram would be). Pairs that
   overlap in time get p = 0 (a person cannot be in two places at once; TOC's rule).

No label is read: the statistic is an excess of co-occurrence over chance in the timing of the
tracklets. It is fitted on the training split and applied to any pair (training chunks,
query x gallery).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .timeline import Timeline, gaps_seconds, overlaps

EDGES = np.concatenate([[0.0], 2.0 ** np.arange(0, 13), [np.inf]])  # seconds


@dataclass
class STSModel:
    num_cameras: int
    edges: np.ndarray
    table: np.ndarray  # (cams, cams, bins) plausibility in [0, 1], symmetric in the cameras
    observed: np.ndarray  # (cams, cams, bins) pair counts (diagnostics)
    expected: np.ndarray  # (cams, cams, bins) chance counts

    def bins(self, gaps: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, gaps, side="right") - 1, 0, len(self.edges) - 2)

    def plausibility(self, a: Timeline, b: Timeline, block: int = 2048) -> np.ndarray:
        """|a| x |b| float32 p_ij (0 where the intervals overlap)."""
        out = np.empty((len(a), len(b)), dtype=np.float32)
        for s in range(0, len(a), block):
            sub = a.subset(np.arange(s, min(len(a), s + block)))
            k = self.bins(gaps_seconds(sub, b))
            p = self.table[sub.cameras[:, None] - 1, b.cameras[None, :] - 1, k]
            p[overlaps(sub, b)] = 0.0
            out[s : s + len(sub)] = p
        return out


def _cell_counts(t: Timeline, num_cameras: int, edges: np.ndarray) -> np.ndarray:
    nb = len(edges) - 1
    counts = np.zeros((num_cameras, num_cameras, nb), dtype=np.float64)
    iu, ju = np.triu_indices(len(t), k=1)
    if len(iu) == 0:
        return counts
    gap_frames = np.maximum(t.start[iu], t.start[ju]) - np.minimum(t.end[iu], t.end[ju])
    keep = gap_frames > 0  # overlapping pairs (gap <= 0) are not transitions
    gap = gap_frames[keep].astype(np.float64) / t.fps
    a, b = t.cameras[iu[keep]] - 1, t.cameras[ju[keep]] - 1
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    k = np.clip(np.searchsorted(edges, gap, side="right") - 1, 0, nb - 1)
    np.add.at(counts, (lo, hi, k), 1.0)
    return counts


def fit_sts(
    t: Timeline,
    num_cameras: int = 8,
    rounds: int = 32,
    prior: float = 5.0,
    seed: int = 0,
    edges: np.ndarray = EDGES,
) -> STSModel:
    """Fits the camera-pair x gap plausibility on a training timeline (whole tracklets)."""
    obs = _cell_counts(t, num_cameras, edges)
    rng = np.random.default_rng(seed)
    duration = t.end - t.start
    lo = np.empty(len(t), dtype=np.int64)
    hi = np.empty(len(t), dtype=np.int64)
    for c in np.unique(t.cameras):  # each camera's recording span
        m = t.cameras == c
        lo[m] = t.start[m].min()
        hi[m] = np.maximum(t.end[m].max() - duration[m], lo[m])
    null = np.zeros_like(obs)
    for _ in range(rounds):
        start = rng.integers(lo, hi + 1)
        shuffled = Timeline(t.cameras, t.x_first, t.x_last, start, start + duration, t.fps)
        null += _cell_counts(shuffled, num_cameras, edges)
    null /= max(rounds, 1)
    # excess over chance, less a two-sigma Poisson allowance (+1 for cells chance almost never
    # fills), so that a stray pair in an empty cell is not taken for a transition
    excess = np.maximum(obs - null - 2.0 * np.sqrt(null + 1.0), 0.0)
    pooled_obs, pooled_null = obs.sum(axis=(0, 1)), null.sum(axis=(0, 1))
    pooled_excess = np.maximum(pooled_obs - pooled_null - 2.0 * np.sqrt(pooled_null + 1.0), 0.0)
    pooled_share = np.divide(pooled_excess, pooled_obs, out=np.zeros_like(pooled_obs), where=pooled_obs > 0)
    share = (excess + prior * pooled_share[None, None, :]) / (obs + prior)
    share = np.maximum(share, np.transpose(share, (1, 0, 2)))  # symmetric in the cameras
    top = share.max()
    table = (share / top if top > 0 else share).astype(np.float32)
    sym = lambda x: x + np.transpose(x, (1, 0, 2)) * (1 - np.eye(num_cameras))[:, :, None]  # noqa: E731
    return STSModel(num_cameras, np.asarray(edges, dtype=np.float64), table, sym(obs), sym(null))
