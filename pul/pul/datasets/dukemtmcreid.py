"""DukeMTMC-reID (Zheng et al., ICCV 2017), official folder ``DukeMTMC-reID/``.

Names ``PPPP_cC_fFFFFFFF.jpg``: pid, camera C (1-8), frame. Train 16,522 images of 702 ids,
query 2,228, gallery 17,661 (408 distractor identities seen only in the gallery).
"""
from __future__ import annotations

import re

from .base import ImageDataset, find_folder, read_split, synthetic_manifest

FOLDER = "DukeMTMC-reID"
SUBFOLDERS = ("bounding_box_train", "bounding_box_test", "query")
PATTERN = re.compile(r"^(-1|\d{4})_c(\d)_f(\d{7})\.jpg(?:\.jpg)?$")
RULE = "PPPP_cC_fFFFFFFF.jpg"
OFFICIAL = {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661)}
HINT = "bounding_box_train/ (16,522 images), bounding_box_test/ (17,661) and query/ (2,228)"


def dukemtmcreid(root) -> ImageDataset:
    folder = find_folder(root, FOLDER, SUBFOLDERS)
    kw = dict(pattern=PATTERN, expected=RULE, dataset="dukemtmcreid", counts_hint=HINT)
    ds = ImageDataset(
        name="dukemtmcreid", folder=folder,
        train=read_split(folder, "bounding_box_train", drop_junk=True, **kw),
        query=read_split(folder, "query", drop_junk=True, **kw),
        gallery=read_split(folder, "bounding_box_test", drop_junk=False, **kw),
        synthetic=synthetic_manifest(folder) is not None)
    ds.check_counts(OFFICIAL)
    return ds
