"""Feature extraction and Open-ReID-style evaluation through common_eval (spec B9).

Features: ``e`` = L2-normalised pool5 averaged over the frames of a sample (all frames of a
tracklet, at most ``max_frames``). Distances: squared Euclidean (the original's
``pairwise_distance``), optionally after a learned metric's transform. Ranking: common_eval's
single-shot protocol (same pid and same camera removed; pid -1 junk removed; queries without a
true match skipped). BUC's native AP is Open-ReID's ``average_precision_score`` under
scikit-learn <= 0.18 (``ap="sklearn018"``); the common flavour is step-wise.

CMC configurations (Open-ReID): ``market1501`` (first match; what BUC prints), ``allshots``
(every true match adds 1/n) and ``cuhk03`` (separate camera set, single gallery shot, 10
repeats). BUC printed only market1501; Open-ReID's evaluator prints all three.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from common_eval import RankResult, evaluate

CMC_CONFIGS = {
    "allshots": dict(separate_camera_set=False, single_gallery_shot=False, first_match_break=False),
    "cuhk03": dict(separate_camera_set=True, single_gallery_shot=True, first_match_break=False),
    "market1501": dict(separate_camera_set=False, single_gallery_shot=False, first_match_break=True),
}
NATIVE_AP = "sklearn018"
COMMON_AP = "stepwise"


@torch.no_grad()
def extract_features(model, data_loader, device="cpu", desc: str = "extract", progress: bool = True):
    """L2-normalised pool5 of every sample, in dataset order, as a float32 (N, d) array. The
    loader's batches are lists of equal-length groups (``utils.data.collate``)."""
    model.eval()
    feats, order = [], []
    for groups in tqdm(data_loader, desc=desc, leave=False, disable=not progress, mininterval=1.0):
        for imgs, index, _ in groups:   # one group per frame count (utils.data.collate)
            _, pool5 = model(imgs.to(device, non_blocking=True))
            feats.append(pool5.float().cpu())
            order.append(torch.as_tensor(index))
    if not feats:
        return np.zeros((0, 0), np.float32)
    out = torch.empty(sum(len(f) for f in feats), feats[0].shape[1])
    out[torch.cat(order)] = torch.cat(feats)   # each feature at its sample's index
    return out.numpy()


def ids_and_cams(records):
    return (np.array([r[1] for r in records], dtype=np.int64),
            np.array([r[2] for r in records], dtype=np.int64))


def evaluate_all(query_features, gallery_features, query, gallery, cmc_configs=("market1501",),
                 cmc_topk=(1, 5, 10, 20), metric=None, seed: int = 0, verbose: bool = True,
                 distmat=None) -> RankResult:
    """Ranks query against gallery and prints Open-ReID's summary; returns the market1501
    RankResult (every AP flavour: ``.metrics("sklearn018")``, ``.metrics("stepwise")``).
    ``distmat`` (Q x G, e.g. re-ranked distances) replaces the features' distances."""
    unknown = [c for c in cmc_configs if c not in CMC_CONFIGS]
    if unknown:
        raise ValueError(f"unknown CMC config {unknown}; valid: {', '.join(CMC_CONFIGS)}")
    qf, gf = np.asarray(query_features), np.asarray(gallery_features)
    if metric is not None:
        qf, gf = metric.transform(qf), metric.transform(gf)
    q_pids, q_cams = ids_and_cams(query)
    g_pids, g_cams = ids_and_cams(gallery)
    max_rank = min(100, len(gallery))
    common = dict(q_pids=q_pids, g_pids=g_pids, q_camids=q_cams, g_camids=g_cams, max_rank=max_rank,
                  ap=NATIVE_AP, seed=seed)
    if distmat is None:
        common.update(query_features=qf, gallery_features=gf, metric="sqeuclidean")
    else:
        common["distmat"] = distmat
    results = {"market1501": evaluate(**common, **CMC_CONFIGS["market1501"])}
    for name in cmc_configs:
        if name not in results:
            results[name] = evaluate(**common, **CMC_CONFIGS[name])
    main = results["market1501"]
    if verbose:
        print(f"Mean AP: {main.mAP_by_flavour[NATIVE_AP]:4.1%}  ({NATIVE_AP}; step-wise "
              f"{main.mAP_by_flavour[COMMON_AP]:4.1%}, mINP {main.mINP:4.1%}, "
              f"{main.num_valid_queries} valid queries)")
        names = [c for c in ("allshots", "cuhk03", "market1501") if c in results]
        if names == ["market1501"]:
            print("CMC Scores:")
            for k in cmc_topk:
                print(f"  top-{k:<4}{main.rank(k):12.1%}")
        else:
            print("CMC Scores" + "".join(f"{n:>12}" for n in names))
            for k in cmc_topk:
                print(f"  top-{k:<4}    " + "".join(f"{results[n].rank(k):12.1%}" for n in names))
    main.cmc_configs = results
    return main
