"""The six auxiliary relations of a DukeMTMC-VideoReID dataset, from its frame names.

Training tracklets are the ones training clusters (whole tracklets, or DENSE_STEP chunks in
dense mode); test relations are query x gallery.

- TOC: two tracklets whose intervals on the common clock overlap cannot be the same person
  (cannot-link pairs in training, +1000 at test). Chunks of one tracklet never overlap.
- SCP: the camera of every tracklet (same-camera pairs get +lambda).
- STS: p_ij from ``sts.fit_sts``, fitted on the whole training tracklets (no labels). Two
  chunks of one tracklet (dense mode) are the same person by construction: p = 1 (the model's
  maximum, factor 1 + lambda exp(-gamma) = 1.0002 at the original's 0.6 / 8), not the model's
  value for two tracklets on one camera 0.2 s apart (p = 0 there, the maximum penalty x1.6).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .store import FILES, save
from .sts import fit_sts
from .timeline import overlaps, timeline

log = logging.getLogger(__name__)


def same_tracklet(keys) -> np.ndarray:
    """N x N bool: the two training items are chunks of one tracklet (the same frame folder;
    keys are '<frame folder>/<first frame>..<last frame>'); the diagonal included."""
    folders = np.asarray([k.rsplit("/", 1)[0] for k in keys])
    _, ids = np.unique(folders, return_inverse=True)
    return ids[:, None] == ids[None, :]


def build_aux(dataset, sts_rounds: int = 32, sts_seed: int = 0) -> dict:
    """{(relation, split): arrays} for a loaded DukeMTMCVideoReID dataset."""
    train_keys = dataset.keys(dataset.train)
    q_keys, g_keys = dataset.keys(dataset.query), dataset.keys(dataset.gallery)
    t_train = timeline([f for f, _, _ in dataset.train])
    t_query = timeline([f for f, _, _ in dataset.query])
    t_gallery = timeline([f for f, _, _ in dataset.gallery])
    whole = getattr(dataset, "train_whole", None) or dataset.train
    model = fit_sts(timeline([f for f, _, _ in whole]), num_cameras=8, rounds=sts_rounds, seed=sts_seed)

    P_train = model.plausibility(t_train, t_train)
    same = same_tracklet(train_keys)
    P_train[same] = 1.0

    ov = overlaps(t_train, t_train)
    i, j = np.nonzero(np.triu(ov, k=1))
    ov_qg = overlaps(t_query, t_gallery)
    qi, gi = np.nonzero(ov_qg)
    sts_extra = {"edges": model.edges, "table": model.table}
    return {
        ("toc", "train"): {"keys": np.asarray(train_keys), "pairs": np.stack([i, j], 1).astype(np.int32)},
        ("scp", "train"): {"keys": np.asarray(train_keys), "cameras": t_train.cameras.astype(np.int8)},
        ("sts", "train"): {
            "keys": np.asarray(train_keys),
            "P": P_train,
            **sts_extra,
        },
        ("toc", "infer"): {
            "query_keys": np.asarray(q_keys),
            "gallery_keys": np.asarray(g_keys),
            "pairs": np.stack([qi, gi], 1).astype(np.int32),
        },
        ("scp", "infer"): {
            "query_keys": np.asarray(q_keys),
            "gallery_keys": np.asarray(g_keys),
            "query_cameras": t_query.cameras.astype(np.int8),
            "gallery_cameras": t_gallery.cameras.astype(np.int8),
        },
        ("sts", "infer"): {
            "query_keys": np.asarray(q_keys),
            "gallery_keys": np.asarray(g_keys),
            "P": model.plausibility(t_query, t_gallery),
            **sts_extra,
        },
    }


def write_aux(dataset, out_dir, sts_rounds: int = 32, sts_seed: int = 0) -> dict:
    """Writes the six files (default names) and ``aux_info.json`` (what was made, from what)."""
    out = Path(out_dir)
    meta = {"dataset": "dukevideo", "mode": dataset.mode, "dense_step": dataset.dense_step}
    relations = build_aux(dataset, sts_rounds, sts_seed)
    written = {}
    for (relation, split), arrays in relations.items():
        path = save(out / FILES[(relation, split)], relation, split, meta, **arrays)
        written[f"{relation}/{split}"] = path.name
    summary = {
        "format": "auxusl-aux-1",
        "dataset_root": str(dataset.root),
        **meta,
        "files": written,
        "train_tracklets": len(dataset.train),
        "query_tracklets": len(dataset.query),
        "gallery_tracklets": len(dataset.gallery),
        "train_cannot_link_pairs": int(len(relations[("toc", "train")]["pairs"])),
        "query_gallery_overlaps": int(len(relations[("toc", "infer")]["pairs"])),
        "sts": {
            "estimator": "label-free excess of co-occurrence over a time-homogeneous chance "
            "model (auxusl/auxinfo/sts.py)",
            "rounds": sts_rounds,
            "seed": sts_seed,
        },
    }
    (out / "aux_info.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
