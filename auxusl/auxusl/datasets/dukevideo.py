"""DukeMTMC-VideoReID (Wu et al., CVPR 2018): ``DukeMTMC-VideoReID/{train,query,gallery}``.

Frames ``<split>/<pid4>/<tracklet4>/<PPPP>_C<c>_F<ffff>_X<xxxxx>.jpg`` (the distributed zip;
the README's ``PPPPCcFffffXxxxxx.jpg`` is read too): pid, camera 1-8, F = 1-based index in the
tracklet, X = frame number in that camera's video (60 fps; tracklet frames every 12 frames).
The pid comes from the folder, as in the original.

As the original (and torchreid), a tracklet of n files is read as the frames F0001..F000n in
that order: an index that is missing is skipped with a warning, so a tracklet numbered from
F0002 loses its last frame. Query tracklets are not in the gallery; the gallery holds 408
distractor identities.

``mode="dense"`` (DATASETS.MODE) splits every *training* tracklet of L frames into
``max(1, L // step)`` consecutive chunks of ``step`` frames, the last chunk taking the rest
(step..2*step-1 frames); a tracklet shorter than ``step`` stays whole.

The common clock (auxiliary information): ``global = X + CAMERA_START[cam] - 1`` with
DukeMTMC's per-camera start offsets.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..errors import DatasetError
from .base import VideoDataset, require

log = logging.getLogger(__name__)

# first frame of each camera's video on DukeMTMC's synchronised clock (cameras 1..8)
CAMERA_START = (5543, 3607, 27244, 31182, 1, 22402, 18968, 46766)
FPS = 60
# the original globs '*.jpg' (names ending in .jpg, hidden files excluded) and finds F<ffff>
# in them: a doubled extension ('...X30823.jpg.jpg') is read too
FRAME_RE = re.compile(r"^(\d{4})_?C(\d)_?F(\d{4})_?X(\d+)(?:\.jpg)+$")


def parse_frame_name(name: str) -> tuple[int, int, int, int]:
    """(pid, camera 1-8, F index, X frame) of a DukeMTMC-VideoReID frame file name."""
    m = FRAME_RE.match(name)
    if m is None:
        raise DatasetError(
            f"{name}: not a DukeMTMC-VideoReID frame name (expected "
            "PPPP_C<c>_F<ffff>_X<frame>.jpg, e.g. 0001_C6_F0001_X30823.jpg)"
        )
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))


def global_frame(cam: int, x: int) -> int:
    """A frame number of camera ``cam`` (1-8) on the common clock."""
    return x + CAMERA_START[cam - 1] - 1


def dense_chunks(frames: tuple, step: int) -> list[tuple]:
    """The original's dense split of one training tracklet."""
    n = len(frames) // step
    if n == 0:
        return [frames]
    return [frames[i * step : (i + 1) * step] if i < n - 1 else frames[i * step :] for i in range(n)]


class DukeMTMCVideoReID(VideoDataset):
    name = "duke"
    folder = "DukeMTMC-VideoReID"
    official = {"train": (2196, 702), "query": 702, "gallery": 2636}
    layout_help = (
        "train/, query/, gallery/ with <pid>/<tracklet>/<PPPP>_C<c>_F<ffff>_X<frame>.jpg; "
        "2,196 train / 702 query / 2,636 gallery tracklets"
    )

    def __init__(self, root, mode: str = "all", dense_step: int = 32, verbose: bool = True):
        if mode not in ("all", "dense"):
            raise ValueError(f"DATASETS.MODE must be 'all' or 'dense', got {mode!r}")
        if dense_step < 1:
            raise ValueError(f"DATASETS.DENSE_STEP must be >= 1, got {dense_step}")
        self.mode, self.dense_step = mode, int(dense_step)
        self.train_whole: list = []
        super().__init__(root, verbose=verbose)

    def load(self, root: Path):
        for d in ("train", "query", "gallery"):
            require(root / d, "split folder", self.layout_help)
        whole = self._split(root / "train")
        self.train_whole = sorted(whole)
        train = whole
        if self.mode == "dense":
            train = [
                (chunk, pid, cam)
                for frames, pid, cam in whole
                for chunk in dense_chunks(frames, self.dense_step)
            ]
        return train, self._split(root / "query"), self._split(root / "gallery")

    def extra_rows(self):
        if self.mode == "dense":
            return [("(whole)", self.info(self.train_whole))]
        return []

    def official_found(self) -> dict:
        found = super().official_found()
        found["train"] = (len(self.train_whole), self.info(self.train_whole)[0])
        return found

    def _split(self, split_dir: Path) -> list:
        out = []
        for pdir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if not pdir.name.isdigit():
                raise DatasetError(f"{pdir}: identity folders must be numbers (e.g. 0001)")
            pid = int(pdir.name)
            for tdir in sorted(t for t in pdir.iterdir() if t.is_dir()):
                # as the original's glob('*.jpg'): hidden files (macOS '._*.jpg' resource forks) and
                # other extensions (Thumbs.db) are not frames
                files = sorted(
                    f.name for f in tdir.iterdir() if f.name.endswith(".jpg") and not f.name.startswith(".")
                )
                if not files:
                    continue
                by_index: dict[int, str] = {}
                cams = set()
                for name in files:
                    _, cam, f, _ = parse_frame_name(name)
                    by_index.setdefault(f, name)
                    cams.add(cam)
                if len(cams) != 1:
                    raise DatasetError(f"{tdir}: the frames come from several cameras {sorted(cams)}")
                cam = cams.pop()
                if not 1 <= cam <= 8:
                    raise DatasetError(f"{tdir}: camera {cam} is outside 1..8")
                frames = []
                for i in range(1, len(files) + 1):
                    if i not in by_index:
                        log.warning(
                            f"WARNING: {tdir}: frame index F{i:04d} is missing; skipped (as the original)"
                        )
                        continue
                    frames.append(str(tdir / by_index[i]))
                if frames:
                    out.append((tuple(frames), pid, cam - 1))
        return out
