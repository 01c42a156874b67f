"""The auxiliary information a run uses, read from its .npz files as the configuration asks:
``load_train_aux`` (clustering: SCP, STS factor, ICDBSCAN cannot-links, aligned with the
clustering samples) and ``load_test_aux`` (evaluation: TOC, SCP, STS, aligned with query x
gallery). A missing or mismatched file names the command that regenerates it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..cluster import sts_factor
from . import store

log = logging.getLogger("auxusl.auxinfo")


def aux_path(cfg, name: str) -> Path:
    return Path(cfg.PICKLE_PATH) / name


def regenerate_hint(cfg) -> str:
    return (
        f"python -m auxusl.tools.make_aux --dataset dukevideo --data-root {cfg.DATASETS.DIR or '.'} "
        f"--name {cfg.DATASETS.NAME} --mode {cfg.DATASETS.MODE} --dense-step {cfg.DATASETS.DENSE_STEP} "
        f"--out {cfg.PICKLE_PATH}"
    )


def load_train_aux(cfg, dataset, multi: int):
    """(SCP N x N, STS factor N x N, cannot-link sets) for the clustering samples, aligned by key."""
    c, hint = cfg.CLUSTER, regenerate_hint(cfg)
    keys = dataset.keys(dataset.train)
    cams = np.asarray([cam + 1 for _, _, cam in dataset.train])
    idx = np.repeat(np.arange(len(keys)), multi)  # CLUSTER_SAMPLE_MULTI clips per tracklet
    scp = sts = cannot = None
    if c.CCE_OPTION:
        scp = store.load_same_camera_train(aux_path(cfg, c.CCE_PATH), keys, cams, hint)[np.ix_(idx, idx)]
        log.info(f"=> SCP (training): read {aux_path(cfg, c.CCE_PATH)}")
    if c.STR_OPTION:
        P = store.load_sts_train(aux_path(cfg, c.STR_PATH), keys, hint)[np.ix_(idx, idx)]
        sts = sts_factor(P, c.STR_LAMBDA, c.STR_GAMMA)
        log.info(
            f"=> STS (training): read {aux_path(cfg, c.STR_PATH)}; 1 + {c.STR_LAMBDA} exp(-{c.STR_GAMMA} P)"
        )
    if c.ICDBSCAN_OPTION:
        sets = store.load_cannotlinks(aux_path(cfg, c.ICDBSCAN_CONSTRAINT_PATH), keys, hint)
        cannot = [sorted({int(j) * multi + s for j in sets[t] for s in range(multi)}) for t in idx]
        log.info(
            f"=> TOC (training): read {aux_path(cfg, c.ICDBSCAN_CONSTRAINT_PATH)}: "
            f"{sum(len(s) for s in sets) // 2} cannot-link pairs"
        )
    return scp, sts, cannot


def load_test_aux(cfg, dataset) -> dict:
    """{"toc" | "scp" | "sts": Q x G matrix} for the test-time terms that are on."""
    t, hint = cfg.TEST, regenerate_hint(cfg)
    q, g = dataset.keys(dataset.query), dataset.keys(dataset.gallery)
    qc = np.asarray([c + 1 for _, _, c in dataset.query])
    gc = np.asarray([c + 1 for _, _, c in dataset.gallery])
    aux = {}
    if t.OVERLAP_CONSTRAINT:
        aux["toc"] = store.load_overlap_infer(aux_path(cfg, t.CONSTRAINT_PATH), q, g, hint)
    if t.CCE_OPTION:
        aux["scp"] = store.load_same_camera_infer(aux_path(cfg, t.CCE_PATH), q, g, qc, gc, hint)
    if t.STR_OPTION:
        aux["sts"] = store.load_sts_infer(aux_path(cfg, t.STR_PATH), q, g, hint)
    if aux:
        log.info(
            f"=> test-time auxiliary terms: {', '.join(k.upper() for k in aux)} (from {cfg.PICKLE_PATH})"
        )
    return aux
