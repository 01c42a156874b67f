"""MARS (``MARS/``), read from the official layout and its ``info/`` files.

``bbox_train/<pid4>/<frame>.jpg`` and ``bbox_test/<pid4>/...`` (``0000`` distractors, ``00-1``
junk); frame name ``0001C1T0001F001.jpg`` (pid, camera 1-6 at character 5, tracklet, frame).
``info/train_name.txt`` / ``test_name.txt`` list the frames; ``tracks_{train,test}_info.mat``
(keys ``track_train_info`` / ``track_test_info``) hold one row per tracklet: first and last line
(1-based, inclusive), pid, camera; ``query_IDX.mat`` (key ``query_IDX``) the 1-based query rows.

Gallery composition (the authors' re-split package is not available; its statistics in the spec
are 8,298 / 1,980 / 9,330 tracklets): gallery = test tracklets not in the query and not junk
(pid -1 dropped), distractors (pid 0) kept, i.e. torchreid's 9,330. The official MATLAB code
instead keeps the queries in the gallery (12,180 rows); common_eval would treat its -1 rows as
junk anyway. With 9,330, 14 query identities have no true match in the gallery and are skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from .base import MalformedDatasetError, ReIDDataset, Tracklet


def _read_mat(path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(loadmat(str(path))[key])
    except (OSError, ValueError, KeyError) as exc:
        raise MalformedDatasetError(f"cannot read '{key}' from {path}: {exc}") from exc


class Mars(ReIDDataset):
    name = "mars"
    folder = "MARS"
    num_cams = 6
    is_video = True
    max_pid = 1634
    unit = "tracklets"
    layout_hint = ("bbox_train/, bbox_test/ and info/ with train_name.txt, test_name.txt, "
                   "tracks_train_info.mat, tracks_test_info.mat, query_IDX.mat")
    expected = {"train": (625, 8298), "query": (626, 1980), "gallery": (622, 9330)}

    @classmethod
    def scan(cls, official: Path):
        info = official / "info"
        for sub in ("bbox_train", "bbox_test", "info"):
            if not (official / sub).is_dir():
                raise cls.missing_subfolder(official, sub)
        for f in ("train_name.txt", "test_name.txt", "tracks_train_info.mat", "tracks_test_info.mat",
                  "query_IDX.mat"):
            if not (info / f).is_file():
                raise cls.missing_subfolder(official, f"info/{f}")

        def tracklets(split: str):
            names = [ln.strip() for ln in (info / f"{split}_name.txt").read_text().splitlines() if ln.strip()]
            rows = _read_mat(info / f"tracks_{split}_info.mat", f"track_{split}_info").astype(np.int64)
            if rows.ndim != 2 or rows.shape[1] < 4:
                raise MalformedDatasetError(f"{info}/tracks_{split}_info.mat: expected N x 4 rows")
            out = []
            for r, (start, end, pid, cam) in enumerate(rows[:, :4]):
                if not (1 <= start <= end <= len(names)):
                    raise MalformedDatasetError(f"tracks_{split}_info row {r + 1}: lines {start}..{end} "
                                                f"outside {split}_name.txt ({len(names)} lines)")
                if not 1 <= cam <= cls.num_cams:
                    raise MalformedDatasetError(f"tracks_{split}_info row {r + 1}: camera {cam}")
                frames = names[start - 1:end]
                if any(n[5] != str(cam) for n in frames):
                    raise MalformedDatasetError(f"tracks_{split}_info row {r + 1}: frame names "
                                                f"{frames[0]}.. do not carry camera {cam} at character 5")
                out.append(Tracklet(int(pid), int(cam) - 1,
                                    [official / f"bbox_{split}" / n[:4] / n for n in frames]))
            return out

        train = tracklets("train")
        test = tracklets("test")
        qidx = _read_mat(info / "query_IDX.mat", "query_IDX").astype(np.int64).ravel() - 1
        if qidx.min(initial=0) < 0 or qidx.max(initial=0) >= len(test):
            raise MalformedDatasetError(f"{info}/query_IDX.mat indexes outside the {len(test)} test rows")
        qset = set(qidx.tolist())
        query = [test[i] for i in qidx]
        gallery = [t for i, t in enumerate(test) if i not in qset and t.pid != -1]
        junk = sum(1 for i, t in enumerate(test) if i not in qset and t.pid == -1)
        if junk:
            print(f"  bbox_test: dropped {junk} junk tracklets (pid -1)")
        for t in train + query + gallery:
            if not 0 <= t.pid <= cls.max_pid:
                raise MalformedDatasetError(f"pid {t.pid} out of range 0..{cls.max_pid} ({t.frames[0]})")
        key = lambda t: (t.pid, t.frames[0].name)  # noqa: E731
        return {"train": sorted(train, key=key), "gallery": sorted(gallery, key=key),
                "query": sorted(query, key=key)}
