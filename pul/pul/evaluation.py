"""Feature extraction (avg_pool, inference mode) and evaluation through common_eval (spec A8).

Similarity is the cosine of the avg_pool features (the original L2-normalised both sides and took
dot products); a gallery image is a match if same pid and other camera, junk (skipped) if same
pid and same camera or pid -1; distractors (pid 0) are ordinary negatives. The original's AP is
the trapezoid rule of the official Market-1501 code: ``ap="trapezoid"`` in common_eval.
"""
from __future__ import annotations

import numpy as np

from . import PULError
from .preprocessing import caffe_preprocess, load_images

NATIVE_AP = "trapezoid"
COMMON_AP = "stepwise"


def extract_features(feature_model, images: np.ndarray, batch_size: int = 64, progress: bool = True,
                     desc: str = "features") -> np.ndarray:
    """avg_pool features (N, D) of uint8 images (N, H, W, 3), no augmentation, inference mode."""
    from tqdm import tqdm

    out = None
    n = len(images)
    for s in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
        f = np.asarray(feature_model.predict_on_batch(caffe_preprocess(images[s:s + batch_size])))
        f = f.reshape(len(f), -1)
        if out is None:
            out = np.empty((n, f.shape[1]), dtype=np.float32)
        out[s:s + len(f)] = f
    if out is None:
        raise PULError("no image to extract features from")
    if not np.isfinite(out).all():
        raise PULError("the model produced NaN or inf features (diverged weights?)")
    return out


def extract_from_records(feature_model, records, size, batch_size: int = 64, chunk: int = 1024,
                         progress: bool = True, desc: str = "features") -> np.ndarray:
    """Features of (path, pid, camid) records, reading the images from disk chunk by chunk."""
    parts = []
    paths = [r[0] for r in records]
    for s in range(0, len(paths), chunk):
        imgs = load_images(paths[s:s + chunk], size, progress=False)
        parts.append(extract_features(feature_model, imgs, batch_size, progress=progress,
                                      desc=f"{desc} {s // chunk + 1}/{-(-len(paths) // chunk)}"))
    return np.concatenate(parts)


def evaluate_features(query_features, gallery_features, query, gallery):
    """common_eval.RankResult (every AP flavour) of cosine ranking; query/gallery are records."""
    from common_eval import evaluate

    q_pids = np.array([r[1] for r in query])
    q_cams = np.array([r[2] for r in query])
    g_pids = np.array([r[1] for r in gallery])
    g_cams = np.array([r[2] for r in gallery])
    return evaluate(query_features=query_features, gallery_features=gallery_features, q_pids=q_pids,
                    g_pids=g_pids, q_camids=q_cams, g_camids=g_cams, metric="cosine", ap=NATIVE_AP,
                    max_rank=min(50, len(gallery)))


def evaluate_distances(distmat, query, gallery):
    """common_eval.RankResult of a Q x G distance matrix (e.g. re-ranked distances)."""
    from common_eval import evaluate

    return evaluate(np.asarray(distmat), np.array([r[1] for r in query]), np.array([r[1] for r in gallery]),
                    np.array([r[2] for r in query]), np.array([r[2] for r in gallery]), ap=NATIVE_AP,
                    max_rank=min(50, len(gallery)))


def cosine_distances(query_features, gallery_features) -> np.ndarray:
    """1 - cos, the distance PUL ranks by (Q x G float32)."""
    from .extractor import l2_normalise
    return 1.0 - l2_normalise(query_features) @ l2_normalise(gallery_features).T


def rerank_distances(query_features, gallery_features, k1: int = 20, k2: int = 6,
                     lambda_value: float = 0.3) -> np.ndarray:
    """k-reciprocal re-ranking (Zhong et al., through common_eval) of PUL's cosine distances (not in
    the original PUL code; the other methods' test.py offer it too)."""
    from common_eval import k_reciprocal_rerank
    return k_reciprocal_rerank(query_features=query_features, gallery_features=gallery_features, k1=k1,
                               k2=k2, lambda_value=lambda_value, metric="cosine")


def evaluate_model(feature_model, dataset, size, batch_size: int = 64, progress: bool = True,
                   cache: dict | None = None):
    """Extracts query and gallery features of ``dataset`` and ranks them. ``cache``: optional dict
    holding the uint8 query/gallery images (kept in memory between evaluations at smoke scale)."""
    if cache is not None:
        if "query" not in cache:
            cache["query"] = load_images([r[0] for r in dataset.query], size, progress, "loading query")
            cache["gallery"] = load_images([r[0] for r in dataset.gallery], size, progress, "loading gallery")
        qf = extract_features(feature_model, cache["query"], batch_size, progress, "query features")
        gf = extract_features(feature_model, cache["gallery"], batch_size, progress, "gallery features")
    else:
        qf = extract_from_records(feature_model, dataset.query, size, batch_size, progress=progress,
                                  desc="query features")
        gf = extract_from_records(feature_model, dataset.gallery, size, batch_size, progress=progress,
                                  desc="gallery features")
    return evaluate_features(qf, gf, dataset.query, dataset.gallery)


def format_metrics(m: dict) -> str:
    return (f"mAP {m['mAP']:.1f} ({m['ap']})  R1 {m['rank1']:.1f}  R5 {m['rank5']:.1f}  "
            f"R10 {m['rank10']:.1f}  mINP {m['mINP']:.1f}")
