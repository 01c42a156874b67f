"""Feature extraction and evaluation through common_eval (CDSM's single-shot protocol).

Features are the eval-mode model's L2-normalised outputs; the distance is squared Euclidean;
gallery items with the query's pid *and* camera are dropped; mAP is step-wise AP (sklearn >=
0.19 ``average_precision_score``, CDSM's own flavour, which is also the common one).
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

import common_eval

log = logging.getLogger(__name__)

NATIVE_AP = "stepwise"  # CDSM: sklearn average_precision_score (>= 0.19)


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


def evaluate_features(query_features, gallery_features, query, gallery, rerank: bool = False,
                      k1: int = 20, k2: int = 6, lambda_value: float = 0.3,
                      reranked=None) -> common_eval.RankResult:
    """Ranks the gallery for every query; ``rerank`` applies Zhong et al.'s re-ranking on
    squared Euclidean distances (as CDSM's test.py --rerank); ``reranked``: those re-ranked
    distances when already computed (``distance_matrix(..., rerank=True)``)."""
    qf = np.ascontiguousarray(np.asarray(query_features, dtype=np.float32))
    gf = np.ascontiguousarray(np.asarray(gallery_features, dtype=np.float32))
    labels = dict(q_pids=[p for _, p, _ in query], g_pids=[p for _, p, _ in gallery],
                  q_camids=[c for _, _, c in query], g_camids=[c for _, _, c in gallery])
    if rerank:
        dist = reranked if reranked is not None else distance_matrix(qf, gf, rerank=True, k1=k1, k2=k2,
                                                                     lambda_value=lambda_value)
        return common_eval.evaluate(dist, **labels, ap="stepwise")
    return common_eval.evaluate(query_features=qf, gallery_features=gf, metric="sqeuclidean", **labels,
                                ap="stepwise")


def distance_matrix(query_features, gallery_features, rerank: bool = False, k1: int = 20, k2: int = 6,
                    lambda_value: float = 0.3) -> np.ndarray:
    """The (Q x G) distances that ``evaluate_features`` ranks: squared Euclidean, or re-ranked."""
    qf = np.ascontiguousarray(np.asarray(query_features, dtype=np.float32))
    gf = np.ascontiguousarray(np.asarray(gallery_features, dtype=np.float32))
    if rerank:
        return common_eval.k_reciprocal_rerank(query_features=qf, gallery_features=gf, k1=k1, k2=k2,
                                               lambda_value=lambda_value, metric="sqeuclidean")
    dist = qf @ gf.T  # float32, in place: one Q x G array at Market size (214 MB)
    dist *= -2.0
    dist += (qf.astype(np.float64) ** 2).sum(1).astype(np.float32)[:, None]
    dist += (gf.astype(np.float64) ** 2).sum(1).astype(np.float32)[None, :]
    return np.maximum(dist, 0.0, out=dist)


def evaluate_model(model, query_loader, gallery_loader, query, gallery, device="cpu", rerank: bool = False,
                   progress: bool | None = None) -> common_eval.RankResult:
    qf = extract_features(model, query_loader, device, "extract query", progress)
    gf = extract_features(model, gallery_loader, device, "extract gallery", progress)
    return evaluate_features(qf, gf, query, gallery, rerank=rerank)


def describe(result: common_eval.RankResult) -> str:
    m = result.metrics("stepwise")
    return (f"mAP {m['mAP']:.1f}  rank-1 {m['rank1']:.1f}  rank-5 {m['rank5']:.1f}  "
            f"rank-10 {m['rank10']:.1f}  mINP {m['mINP']:.1f}")
