"""Feature extraction and evaluation through common_eval (3C's ``evaluator.py`` protocol).

Features are the eval-mode model's L2-normalised outputs. The distance is ``--eval-dist``:
None (3C's default) = squared Euclidean, "Euclidean", "Cosine". For each query, gallery items
with the query's pid *and* camera are dropped (Market, MSMT17 and VeRi alike); mAP is step-wise
AP (sklearn >= 0.19 ``average_precision_score``, 3C's own flavour, which is also the common one).

``--rerank``: Zhong et al.'s k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3) on the same
distances, squared once more as every port of it does. 3C runs it through its own Cython
(``utils/_rerank.pyx``), which accumulates ``temp_min[...] +=`` inside a parallel loop (a data
race: results change from run to run with several threads) and allocates an int32 (Q+G)^2
inverted index (1.5 GB on Market, 35 GB on MSMT17). Here it goes through
``common_eval.k_reciprocal_rerank``: race-free (each output row by one thread) and memory-bounded
(the Q x G output plus a sparse encoding).
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

import common_eval
from common_eval.rank import distance_block

log = logging.getLogger(__name__)

NATIVE_AP = "stepwise"  # 3C: sklearn average_precision_score (>= 0.19)
EVAL_DISTS = {None: "sqeuclidean", "None": "sqeuclidean", "Euclidean": "euclidean", "Cosine": "cosine"}
RERANK = {"k1": 20, "k2": 6, "lambda_value": 0.3}


@torch.no_grad()
def extract_features(model, loader, device="cpu", desc: str = "extract",
                     progress: bool | None = None) -> torch.Tensor:
    """(N x D) float32 CPU features of every item of ``loader``, in its order (eval mode)."""
    was_training = model.training
    model.eval()
    out = []
    for images, *_ in tqdm(loader, desc=desc, disable=None if progress is None else not progress,
                           leave=False, dynamic_ncols=True):
        out.append(model(images.to(device, non_blocking=True)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def distances(query_features, gallery_features, eval_dist=None, rerank: bool = False) -> np.ndarray:
    """The Q x G float32 distances the evaluation ranks by (``eval_dist`` as 3C's ``--eval-dist``;
    ``rerank``: k-reciprocal re-ranked), e.g. for the ranked-list pictures (test.py --visrank)."""
    if eval_dist not in EVAL_DISTS:
        raise ValueError(f"unknown --eval-dist {eval_dist!r}; valid: None, Euclidean, Cosine")
    metric = EVAL_DISTS[eval_dist]
    qf = np.ascontiguousarray(np.asarray(query_features, dtype=np.float32))
    gf = np.ascontiguousarray(np.asarray(gallery_features, dtype=np.float32))
    if rerank:
        return common_eval.k_reciprocal_rerank(query_features=qf, gallery_features=gf, metric=metric,
                                               **RERANK)
    return distance_block(qf, gf, metric)


def evaluate_features(query_features, gallery_features, query, gallery, eval_dist=None,
                      rerank: bool = False, distmat: np.ndarray | None = None) -> common_eval.RankResult:
    """Ranks the gallery for every query (``eval_dist`` as 3C's ``--eval-dist``); ``distmat``:
    the Q x G distances of ``distances()``, when the caller already holds them."""
    if eval_dist not in EVAL_DISTS:
        raise ValueError(f"unknown --eval-dist {eval_dist!r}; valid: None, Euclidean, Cosine")
    metric = EVAL_DISTS[eval_dist]
    qf = np.ascontiguousarray(np.asarray(query_features, dtype=np.float32))
    gf = np.ascontiguousarray(np.asarray(gallery_features, dtype=np.float32))
    labels = dict(q_pids=[p for _, p, _ in query], g_pids=[p for _, p, _ in gallery],
                  q_camids=[c for _, _, c in query], g_camids=[c for _, _, c in gallery])
    if rerank or distmat is not None:
        dist = distmat if distmat is not None else distances(qf, gf, eval_dist, rerank)
        return common_eval.evaluate(dist, **labels, ap="stepwise")
    return common_eval.evaluate(query_features=qf, gallery_features=gf, metric=metric, **labels,
                                ap="stepwise")


def evaluate_model(model, query_loader, gallery_loader, query, gallery, device="cpu", eval_dist=None,
                   rerank: bool = False, progress: bool | None = None) -> common_eval.RankResult:
    qf = extract_features(model, query_loader, device, "extract query", progress)
    gf = extract_features(model, gallery_loader, device, "extract gallery", progress)
    return evaluate_features(qf, gf, query, gallery, eval_dist=eval_dist, rerank=rerank)


def describe(result: common_eval.RankResult) -> str:
    m = result.metrics("stepwise")
    return (f"mAP {m['mAP']:.1f}  rank-1 {m['rank1']:.1f}  rank-5 {m['rank5']:.1f}  "
            f"rank-10 {m['rank10']:.1f}  mINP {m['mINP']:.1f}")
