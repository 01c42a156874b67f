"""Single-shot re-ID ranking: CMC, mAP in three AP flavours, mINP, and the protocol variants.

Protocol (torchreid, fast-reid, Open-ReID and the official MATLAB code agree): for each query,
gallery items with the same pid *and* the same camera are removed, gallery items with pid -1
are junk and removed from every ranking, pid 0 distractors stay as ordinary negatives, and a
query left without any true match is skipped (NaN in ``ap_per_query``, not counted).

Ties in distance are broken by gallery index, as a stable sort would, in every quantity and in
every path (whole matrix, streamed features, single-gallery-shot).

AP flavours (``ap=``):

* ``"stepwise"``: mean over the hits of the precision at the hit (torchreid, fast-reid,
  sklearn >= 0.19). Used by CDSM, 3C and AuxUSL.
* ``"trapezoid"``: the official Market-1501 code: each hit contributes the mean of the
  precision just before it and at it (precision before the first item is 1). Used by PUL.
* ``"sklearn018"``: Open-ReID's ``average_precision_score`` under scikit-learn <= 0.18, the
  trapezoidal area under the precision-recall curve (used by BUC). On a ranking without ties it
  is the same number as ``"trapezoid"`` (both integrate the same points); scikit-learn 0.18 makes
  one PR point of a whole block of tied scores, so on tied distances the original can differ from
  ours, which breaks ties by gallery index.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

try:
    from . import _rank
except ImportError as exc:  # never fall back silently to a slow path
    raise ImportError(
        "common_eval's compiled extension '_rank' is missing or stale. Build it with "
        "'./reproduce.sh setup' (or 'pip install -e common_eval'); there is no Python fallback."
    ) from exc

AP_FLAVOURS = ("stepwise", "trapezoid", "sklearn018")
METRICS = ("sqeuclidean", "euclidean", "cosine")
_BLOCK_BYTES = 256 * 2**20
# which per-row path the kernel takes: 0 chooses by cost, 1 / 2 force the candidate / the
# counting path (tests compare them)
_PATH = 0


@dataclass
class RankResult:
    """What ``evaluate`` returns. Fractions in [0, 1]; ``metrics()`` gives percentages."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    ap_per_query: np.ndarray
    inp_per_query: np.ndarray
    ap: str = "stepwise"
    mAP_by_flavour: dict = field(default_factory=dict)

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based); the last value if the curve is shorter."""
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def metrics(self, ap: str | None = None) -> dict:
        """The results.json record: percentages, with the AP flavour named."""
        flavour = ap or self.ap
        if flavour not in self.mAP_by_flavour:
            raise ValueError(f"unknown AP flavour {flavour!r}; valid: {', '.join(AP_FLAVOURS)}")
        return {
            "ap": flavour,
            "mAP": 100.0 * self.mAP_by_flavour[flavour],
            "rank1": 100.0 * self.rank(1),
            "rank5": 100.0 * self.rank(5),
            "rank10": 100.0 * self.rank(10),
            "mINP": 100.0 * self.mINP,
        }

    def __str__(self) -> str:
        m = self.metrics()
        return (f"mAP {m['mAP']:.1f} ({self.ap})  R1 {m['rank1']:.1f}  R5 {m['rank5']:.1f}  "
                f"R10 {m['rank10']:.1f}  mINP {m['mINP']:.1f}  ({self.num_valid_queries} queries)")


class EvaluationError(ValueError):
    """The data cannot be evaluated (no query with a true match in the gallery, NaN or infinite
    distances or features, an empty query set or gallery). A ValueError, so that callers that
    catch ValueError keep working; the methods' command lines print it as one ``error:`` line."""


def _positive(name: str, value) -> int | None:
    """``num_threads`` / ``block_rows``: None (the documented default) or an integer >= 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be None (the default) or an integer >= 1, got {value!r}")
    return int(value)


def _labels(name: str, values, n: int | None) -> np.ndarray:
    if values is None:
        raise ValueError(f"{name} is required")
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} entries but the distance matrix has {n} "
                         f"{'rows' if name.startswith('q') else 'columns'}")
    if not np.issubdtype(arr.dtype, np.integer):
        try:
            as_int = arr.astype(np.int64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}") from None
        if not np.array_equal(as_int, arr):
            raise ValueError(f"{name} must hold integers, got non-integral values")
        arr = as_int
    return np.ascontiguousarray(arr, dtype=np.int64)


def _features(name: str, x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, dim) array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise EvaluationError(f"{name} is empty (no images)")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise EvaluationError(f"{name} contains NaN or inf")
    return arr


def distance_block(q: np.ndarray, g: np.ndarray, metric: str, g_sqnorm: np.ndarray | None = None,
                   out: np.ndarray | None = None, num_threads: int | None = None) -> np.ndarray:
    """Distances between rows of q and rows of g (float32), as the methods define them.

    sqeuclidean = |q|^2 + |g|^2 - 2 q.g (clamped at 0), euclidean = its square root,
    cosine = 1 - q.g / (|q| |g|). One matrix product plus one fused pass.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    q = np.ascontiguousarray(q, dtype=np.float32)
    g = np.ascontiguousarray(g, dtype=np.float32)
    gs = g_sqnorm if g_sqnorm is not None else np.einsum("ij,ij->i", g, g)
    gs = np.ascontiguousarray(gs, dtype=np.float32)
    qs = np.einsum("ij,ij->i", q, q).astype(np.float32)
    threads = _positive("num_threads", num_threads) or os.cpu_count() or 1
    if metric == "cosine":
        d = np.matmul(q, g.T, out=out)
        _rank.finish_distances(d, np.sqrt(qs), np.sqrt(gs), 2, threads)
    else:
        d = np.matmul(q * np.float32(-2.0), g.T, out=out)
        _rank.finish_distances(d, qs, gs, 1 if metric == "euclidean" else 0, threads)
    return d


def evaluate(distmat=None, q_pids=None, g_pids=None, q_camids=None, g_camids=None, *,
             query_features=None, gallery_features=None, metric: str = "sqeuclidean",
             max_rank: int = 50, ap: str = "stepwise", separate_camera_set: bool = False,
             single_gallery_shot: bool = False, first_match_break: bool = True,
             num_repeats: int = 10, seed: int = 0, num_threads: int | None = None,
             block_rows: int | None = None) -> RankResult:
    """Evaluates a ranking, from a Q x G distance matrix or from query and gallery features.

    With features, distances (``metric``) are computed in blocks of query rows and evaluated
    block by block, so no Q x G matrix is ever held. Options mirror the originals:

    * ``separate_camera_set`` (Open-ReID): also remove every same-camera gallery item from the
      CMC ranking (AP keeps the standard valid list, as Open-ReID's ``mean_ap`` does).
    * ``single_gallery_shot`` (Open-ReID; torchreid's CUHK03 metric): the CMC averages
      ``num_repeats`` rankings in which one random gallery item per identity is kept, drawn
      from ``numpy.random.default_rng(seed)``; AP uses the full valid list.
    * ``first_match_break=False`` (Open-ReID "allshots"): each of a query's n true matches adds
      1/n to the CMC at its rank among non-matches.
    """
    if ap not in AP_FLAVOURS:
        raise ValueError(f"unknown AP flavour {ap!r}; valid: {', '.join(AP_FLAVOURS)}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    from_features = query_features is not None or gallery_features is not None
    if from_features:
        if distmat is not None:
            raise ValueError("pass either distmat or query_features/gallery_features, not both")
        if query_features is None or gallery_features is None:
            raise ValueError("both query_features and gallery_features are required")
        qf = _features("query_features", query_features)
        gf = _features("gallery_features", gallery_features)
        if qf.shape[1] != gf.shape[1]:
            raise ValueError(f"query_features have dimension {qf.shape[1]} but gallery_features "
                             f"have {gf.shape[1]}")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
        Q, G = qf.shape[0], gf.shape[0]
    else:
        if distmat is None:
            raise ValueError("distmat (or query_features and gallery_features) is required")
        distmat = np.asarray(distmat)
        if distmat.ndim != 2:
            raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {distmat.shape}")
        Q, G = distmat.shape
        if distmat.dtype not in (np.float32, np.float64):
            distmat = distmat.astype(np.float32)
        if not distmat.flags.c_contiguous:
            distmat = np.ascontiguousarray(distmat)
    if Q == 0:
        raise EvaluationError("the query set is empty")
    if G == 0:
        raise EvaluationError("the gallery is empty")
    q_pids = _labels("q_pids", q_pids, Q)
    q_cams = _labels("q_camids", q_camids, Q)
    g_pids = _labels("g_pids", g_pids, G)
    g_cams = _labels("g_camids", g_camids, G)
    if max_rank > G:
        warnings.warn(f"max_rank {max_rank} exceeds the gallery size {G}; clamped to {G}",
                      stacklevel=2)
        max_rank = G
    threads = _positive("num_threads", num_threads) or os.cpu_count() or 1
    block_rows = _positive("block_rows", block_rows)

    # gallery grouped by pid: the positives of a query are one contiguous slice
    grp = np.argsort(g_pids, kind="stable").astype(np.int64)
    sorted_pids = g_pids[grp]
    q_start = np.searchsorted(sorted_pids, q_pids, side="left").astype(np.int64)
    q_stop = np.searchsorted(sorted_pids, q_pids, side="right").astype(np.int64)
    q_stop[q_pids == -1] = q_start[q_pids == -1]  # a junk query has no true match
    max_pos = int((q_stop - q_start).max(initial=0))
    junk = np.flatnonzero(g_pids == -1).astype(np.int64)

    out = np.empty((Q, 5), dtype=np.float64)
    allshots = np.zeros((Q, max_rank if not first_match_break else 0), dtype=np.float64)
    # the standard list for AP; separate_camera_set only changes the CMC list (Open-ReID)
    cmc_out = np.empty((Q, 5), dtype=np.float64) if separate_camera_set else out

    def run(block, sl):
        args = (q_pids[sl], q_cams[sl], g_pids, g_cams, grp, q_start[sl], q_stop[sl])
        no_shots = np.zeros((block.shape[0], 0))
        _rank.rank_block(block, *args, False, max_pos, out[sl],
                         no_shots if separate_camera_set else allshots[sl], threads, junk, _PATH)
        if separate_camera_set:
            _rank.rank_block(block, *args, True, max_pos, cmc_out[sl], allshots[sl], threads,
                             junk, _PATH)

    sgs = np.zeros((Q, max_rank), dtype=np.float64) if single_gallery_shot else None
    if from_features:
        rows = block_rows or max(1, min(Q, _BLOCK_BYTES // (4 * G)))
        g_sq = np.einsum("ij,ij->i", gf, gf)
        buf = np.empty((rows, G), dtype=np.float32)
        for s in range(0, Q, rows):
            sl = slice(s, min(Q, s + rows))
            block = distance_block(qf[sl], gf, metric, g_sq, out=buf[: sl.stop - s],
                                   num_threads=threads)
            run(block, sl)
            if single_gallery_shot:
                _single_gallery_shot(block, sl, q_pids, q_cams, g_pids, g_cams,
                                     separate_camera_set, num_repeats, seed, sgs)
    else:
        run(distmat, slice(0, Q))
        if single_gallery_shot:
            _single_gallery_shot(distmat, slice(0, Q), q_pids, q_cams, g_pids, g_cams,
                                 separate_camera_set, num_repeats, seed, sgs)

    bad = np.flatnonzero((out[:, 0] < 0) | (cmc_out[:, 0] < 0))
    if len(bad):
        raise EvaluationError(f"distances contain NaN or inf (first in query row {bad[0]})")
    valid = out[:, 0] > 0
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise EvaluationError("no valid query: no query has a true match (same pid, other camera) in "
                         "the gallery; check that query and gallery pids and cameras are aligned")

    ap_step = np.where(valid, out[:, 1], np.nan)
    ap_trap = np.where(valid, out[:, 2], np.nan)
    inp = np.where(valid, out[:, 3], np.nan)
    if single_gallery_shot:
        cmc = sgs[valid].sum(axis=0) / n_valid
    elif not first_match_break:
        cmc = np.cumsum(allshots[valid].sum(axis=0)) / n_valid
    else:
        cmc_valid = cmc_out[:, 0] > 0
        first = cmc_out[valid & cmc_valid, 4].astype(np.int64)
        hist = np.bincount(first[first <= max_rank] - 1, minlength=max_rank)
        cmc = np.cumsum(hist) / n_valid
    by_flavour = {
        "stepwise": float(np.nanmean(ap_step)),
        "trapezoid": float(np.nanmean(ap_trap)),
        "sklearn018": float(np.nanmean(ap_trap)),
    }
    return RankResult(
        cmc=cmc.astype(np.float64),
        mAP=by_flavour[ap],
        mINP=float(np.nanmean(inp)),
        num_valid_queries=n_valid,
        ap_per_query=ap_trap if ap != "stepwise" else ap_step,
        inp_per_query=inp,
        ap=ap,
        mAP_by_flavour=by_flavour,
    )


def _single_gallery_shot(dist, sl, q_pids, q_cams, g_pids, g_cams, separate_camera_set,
                         num_repeats, seed, out):
    """Per-query CMC rows (into out[sl]): one random gallery item per identity, repeated.

    The generator is seeded per query (seed, query index), so the result does not depend on
    how queries are split into blocks.
    """
    max_rank = out.shape[1]
    idx = np.arange(dist.shape[1])
    for row, qi in enumerate(range(sl.start, sl.stop)):
        d = dist[row]
        keep = (g_pids != -1) & ~((g_pids == q_pids[qi]) & (g_cams == q_cams[qi]))
        if separate_camera_set:
            keep &= g_cams != q_cams[qi]
        if q_pids[qi] == -1 or not np.any(keep & (g_pids == q_pids[qi])):
            continue
        kd, kp, ki = d[keep], g_pids[keep], idx[keep]
        rng = np.random.default_rng([seed, qi])
        hist = np.zeros(max_rank, dtype=np.float64)
        for _ in range(num_repeats):
            order = np.lexsort((rng.random(len(kp)), kp))  # random member first in each pid
            first = order[np.r_[True, kp[order][1:] != kp[order][:-1]]]
            pos = first[kp[first] == q_pids[qi]][0]
            sd, si = kd[first], ki[first]
            rank = int(np.sum((sd < kd[pos]) | ((sd == kd[pos]) & (si < ki[pos]))))
            if rank < max_rank:
                hist[rank] += 1.0
        out[qi] = np.cumsum(hist) / num_repeats
