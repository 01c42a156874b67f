"""CUHK03 (Li et al., CVPR 2014) in the PUL author's folders: the new protocol (Zhong et al.,
CVPR 2017), detected boxes: 767 train / 700 test persons.

``CUHK03/`` with ``bounding_box_train/`` (the PUL script) or ``bbox_train/`` (baseline and
semi-supervised scripts; the same images), ``bbox_test/`` (gallery, 5,332) and ``query/`` (1,400).
Names ``PPPP_cV_fNN.jpg``: person 1..1467, view V (1, 2; used as the camera), column NN of the
release's cell array. When these folders are absent but the official release is there
(``cuhk03_release/cuhk-03.mat`` + ``cuhk03_new_protocol_config_detected.mat``), the loader runs
the converter (pul.convert_cuhk03) into a cache folder (``${XDG_CACHE_HOME:-~/.cache}/pul/cuhk03/``,
reused while the release is unchanged) and reads from there: nothing is written under the data root.
"""
from __future__ import annotations

import re

from ..convert_cuhk03 import SPLIT, cache_folder, conversion_inputs, convert_cuhk03, is_converted
from .base import DatasetError, ImageDataset, find_folder, read_split, synthetic_manifest

FOLDER = "CUHK03"
PATTERN = re.compile(r"^(-1|\d{4})_c([12])_f(\d{2})\.jpg(?:\.jpg)?$")
RULE = "PPPP_cV_fNN.jpg"
OFFICIAL = {"train": (767, 7365), "query": (700, 1400), "gallery": (700, 5332)}
HINT = ("bounding_box_train/ or bbox_train/ (7,365 images), bbox_test/ (5,332) and query/ (1,400), "
        "made from cuhk03_release/cuhk-03.mat and " + SPLIT.format("detected")
        + " by 'python -m pul.convert_cuhk03 CUHK03_FOLDER'")


def cuhk03(root, convert: bool = True, train_folder: str | None = None) -> ImageDataset:
    """train_folder: 'bounding_box_train' (PUL) or 'bbox_train' (baseline, semi); default: the one
    that exists (the first if both)."""
    try:
        folder = find_folder(root, FOLDER, ("bbox_test", "query"))
    except DatasetError:
        folder = find_folder(root, FOLDER, ("cuhk03_release",))
    source = folder
    if not is_converted(folder):
        release, split = conversion_inputs(folder)
        if not (release.is_file() and split.is_file()):
            raise DatasetError(f"cuhk03: '{folder}' holds neither the PUL folders nor the official "
                               f"release to make them from. Expected {HINT}")
        if not convert:
            raise DatasetError(f"cuhk03: '{folder}' holds the official release but not the PUL folders; "
                               f"run: python -m pul.convert_cuhk03 {folder}")
        cache = cache_folder(folder)
        if not is_converted(cache):
            print(f"=> converting the official CUHK03 release in {folder} to the PUL folders in {cache} "
                  f"(the data root is only read; python -m pul.convert_cuhk03 {folder} writes them there)")
            try:
                convert_cuhk03(folder, out=cache, overwrite=True)
            except OSError as exc:
                raise DatasetError(f"cuhk03: cannot write the converted folders into {cache} ({exc}); set "
                                   "XDG_CACHE_HOME to a writable folder, or convert once with python -m "
                                   f"pul.convert_cuhk03 {folder} --out DIR and pass DIR's parent as the "
                                   "data root") from exc
        folder = cache
    if train_folder is None:
        train_folder = "bounding_box_train" if (folder / "bounding_box_train").is_dir() else "bbox_train"
    kw = dict(pattern=PATTERN, expected=RULE, dataset="cuhk03", counts_hint=HINT)
    ds = ImageDataset(
        name="cuhk03", folder=folder,
        train=read_split(folder, train_folder, drop_junk=True, **kw),
        query=read_split(folder, "query", drop_junk=True, **kw),
        gallery=read_split(folder, "bbox_test", drop_junk=False, **kw),
        synthetic=synthetic_manifest(source) is not None)
    ds.check_counts(OFFICIAL)
    return ds
