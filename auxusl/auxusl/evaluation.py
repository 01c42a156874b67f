"""Feature extraction (clips for clustering, every frame for testing) and evaluation.

Clustering features (``cluster_features``): one random contiguous clip of ``seq_len`` frames
per training tracklet (``data.video.clip_indices``, cycled when shorter; ``multi`` clips per
tracklet give ``multi`` samples, tracklet-major as the original orders them), through the
eval-mode teacher; feature = temporal mean of the *raw* GAP features (not normalised).

Test features (``tracklet_features``): every frame of every tracklet; feature = mean over the
frames of the per-frame L2-normalised BN feature (not re-normalised). Frames go through the
network in batches regardless of tracklet boundaries (eval mode: a frame's feature does not
depend on its batch) and are pooled per tracklet on the fly.

Distance (``query_gallery_distance``): squared Euclidean, then the test-time auxiliary terms
in the original's order: ``+ 1000 * TOC``, ``+ lambda_c * SCP`` (0.03), ``* (1 + lambda_s *
exp(-gamma * P))``. Ranking: ``common_eval.evaluate`` with step-wise AP (the original's
sklearn ``average_precision_score``; also the common flavour).
"""

from __future__ import annotations

import logging
import random
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

import common_eval
from common_eval.rank import distance_block

from .cluster.distance import sts_factor
from .data.video import FrameDataset, clip_indices

log = logging.getLogger(__name__)

NATIVE_AP = "stepwise"


@torch.no_grad()
def _pooled(
    model, groups, transform, reader, device, batch_frames: int, workers: int, want: str, desc: str, progress
):
    """groups: list of {frame path: weight}; returns (G x D) weighted means of per-frame
    features: want "raw" (GAP) or "norm" (L2-normalised BN), or "both"."""
    paths, owner, weight = [], [], []
    for g, counts in enumerate(groups):
        for p, w in counts.items():
            paths.append(p)
            owner.append(g)
            weight.append(w)
    owner_t = torch.as_tensor(owner, dtype=torch.long)
    weight_t = torch.as_tensor(weight, dtype=torch.float32)
    totals = torch.zeros(len(groups)).index_add_(0, owner_t, weight_t)
    was_training = model.training
    model.eval()
    loader = DataLoader(
        FrameDataset(paths, transform, reader), batch_size=batch_frames, shuffle=False, num_workers=workers
    )
    sums = {}
    for images, pos in tqdm(
        loader, desc=desc, disable=None if progress is None else not progress, leave=False, dynamic_ncols=True
    ):
        x, bn_x = model.frame_features(images.to(device))
        outs = {"raw": x, "norm": F.normalize(bn_x)}
        w = weight_t[pos].unsqueeze(1)
        for name in ("raw", "norm") if want == "both" else (want,):
            f = outs[name].float().cpu() * w
            if name not in sums:
                sums[name] = torch.zeros(len(groups), f.shape[1])
            sums[name].index_add_(0, owner_t[pos], f)
    model.train(was_training)
    result = {k: (v / totals.unsqueeze(1)).numpy() for k, v in sums.items()}
    return result if want == "both" else result[want]


def cluster_features(
    model,
    items,
    seq_len: int,
    transform,
    reader=None,
    device="cpu",
    multi: int = 1,
    batch_frames: int = 256,
    workers: int = 0,
    progress=None,
    rng=random,
    part: range | None = None,
):
    """(N*multi x D raw features, sampled frame indices per sample); sample s*... tracklet-major.
    ``part``: compute the features of these samples only (every clip is still drawn, so the RNG
    advances as for the whole set; a distributed run gathers the parts in order)."""
    clips = [[None] * multi for _ in items]
    for m in range(multi):  # the original loops over the whole loader once per clip
        for t, (paths, _, _) in enumerate(items):
            clip, sampled = clip_indices(len(paths), seq_len, rng)
            clips[t][m] = (Counter(paths[i] for i in clip), sampled)
    groups = [c for per in clips for c, _ in per]
    if part is not None:
        groups = groups[part.start : part.stop]
    sampled = [s for per in clips for _, s in per]
    feats = _pooled(
        model, groups, transform, reader, device, batch_frames, workers, "raw", "extract clusters", progress
    )
    return feats, sampled


def tracklet_features(
    model,
    items,
    transform,
    reader=None,
    device="cpu",
    batch_frames: int = 256,
    workers: int = 0,
    progress=None,
    desc: str = "extract",
):
    """(inference features, raw features) of every tracklet, all frames averaged."""
    groups = [Counter(paths) for paths, _, _ in items]
    out = _pooled(model, groups, transform, reader, device, batch_frames, workers, "both", desc, progress)
    return out["norm"], out["raw"]


def query_gallery_distance(
    qf,
    gf,
    toc=None,
    scp=None,
    scp_lambda: float = 0.03,
    sts_p=None,
    sts_lambda: float = 0.6,
    sts_gamma: float = 8.0,
) -> np.ndarray:
    """Squared Euclidean Q x G distance with the optional test-time TOC, SCP and STS terms."""
    dist = distance_block(np.asarray(qf, np.float32), np.asarray(gf, np.float32), "sqeuclidean")
    if toc is not None:
        dist = dist + np.asarray(toc, np.float32) * np.float32(1000.0)
    if scp is not None:
        dist = dist + np.asarray(scp, np.float32) * np.float32(scp_lambda)
    if sts_p is not None:
        dist = dist * sts_factor(sts_p, sts_lambda, sts_gamma)
    return np.ascontiguousarray(dist, dtype=np.float32)


def labels_of(items):
    return dict(pids=np.asarray([p for _, p, _ in items]), cams=np.asarray([c for _, _, c in items]))


def evaluate_distance(dist, query, gallery) -> common_eval.RankResult:
    q, g = labels_of(query), labels_of(gallery)
    return common_eval.evaluate(
        dist, q["pids"], g["pids"], q["cams"], g["cams"], ap="stepwise", max_rank=min(50, len(gallery))
    )


def rerank(dist_qg, qf, gf, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """Zhong et al.'s re-ranking on the (possibly modified) q-g block and unmodified q-q, g-g
    blocks of squared Euclidean distances, as the original."""
    qq = distance_block(qf, qf, "sqeuclidean")
    gg = distance_block(gf, gf, "sqeuclidean")
    return common_eval.k_reciprocal_rerank(dist_qg, qq, gg, k1=k1, k2=k2, lambda_value=lambda_value)


def describe(result: common_eval.RankResult) -> str:
    m = result.metrics("stepwise")
    return (
        f"mAP {m['mAP']:.1f}  rank-1 {m['rank1']:.1f}  rank-5 {m['rank5']:.1f}  rank-10 {m['rank10']:.1f}  "
        f"mINP {m['mINP']:.1f}"
    )


class Evaluator:
    """Teacher features of query and gallery, the test-time terms, common_eval ranking: what a
    run evaluates each time (configuration ``cfg``: TEST.*, CLUSTER.STR_*, the batch sizes)."""

    def __init__(self, cfg, dataset, transform, reader, device, progress):
        from .auxinfo.from_config import load_test_aux

        self.cfg, self.dataset, self.transform, self.reader = cfg, dataset, transform, reader
        self.device, self.progress = device, progress
        self.aux = load_test_aux(cfg, dataset)

    def distance(self, qf, gf, terms) -> np.ndarray:
        c = self.cfg
        return query_gallery_distance(
            qf,
            gf,
            toc=self.aux["toc"] if "toc" in terms else None,
            scp=self.aux["scp"] if "scp" in terms else None,
            scp_lambda=c.TEST.CCE_LAMBDA,
            sts_p=self.aux["sts"] if "sts" in terms else None,
            sts_lambda=c.CLUSTER.STR_LAMBDA,
            sts_gamma=c.CLUSTER.STR_GAMMA,
        )

    def features(self, model, items, desc: str = "extract"):
        """(inference features, raw features) of ``items`` as the evaluation computes them."""
        c = self.cfg
        return tracklet_features(
            model,
            items,
            self.transform,
            self.reader,
            desc=desc,
            device=self.device,
            batch_frames=c.DATALOADER.CLUSTER_BATCH_SIZE * c.DATALOADER.CLUSTER_SEQ_LEN,
            workers=c.DATALOADER.NUM_WORKERS,
            progress=self.progress,
        )

    def __call__(self, model) -> dict:
        """{"result": RankResult with the configured terms, "ablation": {name: metrics},
        "dist": the ranked Q x G distances; with TEST.RERANK.ENABLED also "rerank" (RankResult)
        and "dist_rerank"}."""
        c, d = self.cfg, self.dataset
        qf, _ = self.features(model, d.query, "extract query")
        gf, _ = self.features(model, d.gallery, "extract gallery")
        terms = tuple(self.aux)
        dist = self.distance(qf, gf, terms)
        result = evaluate_distance(dist, d.query, d.gallery)
        ablation = {}
        if terms:  # each test-time module's effect on its own, from the same features
            ablation["none"] = evaluate_distance(self.distance(qf, gf, ()), d.query, d.gallery).metrics(
                "stepwise"
            )
            if len(terms) > 1:
                for t in terms:
                    ablation[t] = evaluate_distance(self.distance(qf, gf, (t,)), d.query, d.gallery).metrics(
                        "stepwise"
                    )
            ablation["+".join(terms)] = result.metrics("stepwise")
        out = {"result": result, "ablation": ablation, "dist": dist}
        if c.TEST.RERANK.ENABLED:
            r = c.TEST.RERANK
            out["dist_rerank"] = rerank(dist, qf, gf, r.K1, r.K2, r.LAMBDA)
            out["rerank"] = evaluate_distance(out["dist_rerank"], d.query, d.gallery)
        return out
