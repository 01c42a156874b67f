"""Market-1501 (Zheng et al., ICCV 2015), official folder ``Market-1501-v15.09.15/``.

Names ``PPPP_cCsS_FFFFFF_BB.jpg``: pid (``-1`` = junk box, ``0000`` = distractor), camera C (1-6),
sequence S, frame, box. PUL's lists: train.list = bounding_box_train (12,936 images, 751 ids);
evaluation lists query/ (3,368) and bounding_box_test/ (19,732, junk and distractors included:
junk is skipped by the evaluator, distractors are ordinary negatives). The release names 24 of
its query/gallery images ``...jpg.jpg`` (e.g. ``1488_c1s6_023021_00.jpg.jpg``; the author's
query.list and test.list list them so); they are read like any other name.
"""
from __future__ import annotations

import re

from .base import ImageDataset, find_folder, read_split, synthetic_manifest

FOLDER = "Market-1501-v15.09.15"
SUBFOLDERS = ("bounding_box_train", "bounding_box_test", "query")
PATTERN = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg(?:\.jpg)?$")
RULE = "PPPP_cCsS_FFFFFF_BB.jpg"
# (ids, images) per split, as the PUL lists count them (gallery with junk and distractors)
OFFICIAL = {"train": (751, 12936), "query": (750, 3368), "gallery": (None, 19732)}
HINT = ("bounding_box_train/ (12,936 images), bounding_box_test/ (19,732) and query/ (3,368)")


def market1501(root) -> ImageDataset:
    folder = find_folder(root, FOLDER, SUBFOLDERS)
    kw = dict(pattern=PATTERN, expected=RULE, dataset="market1501", counts_hint=HINT)
    ds = ImageDataset(
        name="market1501", folder=folder,
        train=read_split(folder, "bounding_box_train", drop_junk=True, **kw),
        query=read_split(folder, "query", drop_junk=True, **kw),
        gallery=read_split(folder, "bounding_box_test", drop_junk=False, **kw),
        synthetic=synthetic_manifest(folder) is not None)
    ds.check_counts(OFFICIAL)
    return ds
