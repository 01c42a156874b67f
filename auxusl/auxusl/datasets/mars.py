"""MARS (Zheng et al., ECCV 2016): ``MARS/{bbox_train, bbox_test, info}``.

Frames ``bbox_{train,test}/<pid4>/<PPPPCcTttttFfff>.jpg`` (pid, camera 1-6, tracklet, frame);
``info/{train,test}_name.txt`` list every frame name, ``info/tracks_{train,test}_info.mat``
(keys ``track_train_info``, ``track_test_info``) hold one row per tracklet ``[start line, end
line, pid, camera]`` (1-based, inclusive) and ``info/query_IDX.mat`` the 1-based query rows.
Rows with pid -1 are junk and dropped everywhere; pid 0 (distractors) stays in the gallery.

Gallery composition (``gallery=``): "torchreid" = every test tracklet that is not a query, as the
original AuxUSL code, torchreid and BUC (9,330 tracklets; 14 query identities are then left
without a true match and are skipped); "official" = all test tracklets, as the MATLAB code.
``info_dir`` (DATASETS.MARS_INFO) may name another folder for the training lists, as the
original allows (the test lists always come from ``info/``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from common_eval import mars_split

from ..errors import DatasetError
from .base import VideoDataset, require


def read_names(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_mat(path: Path, key: str) -> np.ndarray:
    try:
        data = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for damaged files
        raise DatasetError(f"cannot read {path} ({exc}); the MARS info files look damaged") from None
    if key not in data:
        raise DatasetError(
            f"{path} has no variable '{key}' (found: {', '.join(k for k in data if not k.startswith('__'))})"
        )
    return np.asarray(data[key]).astype(np.int64)


class MARS(VideoDataset):
    name = "mars"
    folder = "MARS"
    official = {"train": (8298, 625), "query": 1980, "gallery": 9330}
    layout_help = (
        "bbox_train/, bbox_test/, info/{train,test}_name.txt, info/tracks_{train,test}_info.mat, "
        "info/query_IDX.mat; 8,298 train / 1,980 query / 9,330 gallery tracklets"
    )

    def __init__(self, root, info_dir: str = "info", gallery: str = "torchreid", verbose: bool = True):
        self.info_dir = info_dir
        self.gallery_mode = gallery
        super().__init__(root, verbose=verbose)

    def official_found(self) -> dict:
        found = super().official_found()
        if self.gallery_mode == "official":
            found["gallery"] = len(self.gallery) - len(self.query)  # the 9,330 non-query tracklets
        return found

    def load(self, root: Path):
        for d in ("bbox_train", "bbox_test"):
            require(root / d, "frame folder", self.layout_help)
        train_info = root / self.info_dir
        files = {
            "train_name": train_info / "train_name.txt",
            "test_name": root / "info" / "test_name.txt",
            "track_train": train_info / "tracks_train_info.mat",
            "track_test": root / "info" / "tracks_test_info.mat",
            "query_idx": root / "info" / "query_IDX.mat",
        }
        for path in files.values():
            require(path, "MARS info file", self.layout_help)
        train_names = read_names(files["train_name"])
        test_names = read_names(files["test_name"])
        track_train = read_mat(files["track_train"], "track_train_info")
        track_test = read_mat(files["track_test"], "track_test_info")
        query_idx = read_mat(files["query_idx"], "query_IDX").ravel()
        for name, arr in (("track_train_info", track_train), ("track_test_info", track_test)):
            if arr.ndim != 2 or arr.shape[1] != 4:
                raise DatasetError(f"MARS {name} must be a (tracklets x 4) matrix, got shape {arr.shape}")
        try:
            q_rows, g_rows = mars_split(len(track_test), query_idx, gallery=self.gallery_mode)
        except ValueError as exc:
            raise DatasetError(f"MARS info/query_IDX.mat: {exc}") from None
        check_person = self.info_dir in ("info", "info_x2")
        train = self._tracklets(root / "bbox_train", train_names, track_train, check_person)
        query = self._tracklets(root / "bbox_test", test_names, track_test[q_rows], check_person)
        gallery = self._tracklets(root / "bbox_test", test_names, track_test[g_rows], check_person)
        return train, query, gallery

    def _tracklets(self, home: Path, names: list[str], rows: np.ndarray, check_person: bool):
        out = []
        for start, end, pid, cam in rows.tolist():
            if pid == -1:
                continue  # junk
            if not 1 <= cam <= 6:
                raise DatasetError(f"MARS tracklet rows {start}-{end}: camera {cam} is outside 1..6")
            if not 1 <= start <= end <= len(names):
                raise DatasetError(
                    f"MARS tracklet rows {start}-{end} fall outside the {len(names)} frame "
                    f"names of {home.name}"
                )
            frames = names[start - 1 : end]
            if check_person and len({f[:4] for f in frames}) != 1:
                raise DatasetError(
                    f"MARS tracklet {frames[0]}..{frames[-1]} holds frames of different persons"
                )
            if len({f[5] for f in frames}) != 1:
                raise DatasetError(
                    f"MARS tracklet {frames[0]}..{frames[-1]} holds frames of different cameras"
                )
            paths = tuple(str(home / f[:4] / f) for f in frames)
            if not Path(paths[0]).is_file():
                raise DatasetError(
                    f"{paths[0]} is missing: the frames of {home.name} do not match the info lists"
                )
            out.append((paths, int(pid), int(cam) - 1))
        return out
