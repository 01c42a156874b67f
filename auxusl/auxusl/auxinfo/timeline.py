"""When and where a tracklet was seen, from its frame names alone.

DukeMTMC-VideoReID frame names end in ``_X<frame>``: the frame number in that camera's video.
On the common clock (DukeMTMC's synchronised 60 fps timeline) a frame is at
``X + CAMERA_START[cam] - 1``. A tracklet (or dense chunk) covers the closed interval from its
first to its last frame; its camera is the ``C<c>`` field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets.dukevideo import CAMERA_START, FPS, parse_frame_name
from ..errors import AuxInfoError


@dataclass
class Timeline:
    """Per tracklet: camera (1-based), first / last X on its camera's clock, and the interval on
    the common clock (frames)."""

    cameras: np.ndarray
    x_first: np.ndarray
    x_last: np.ndarray
    start: np.ndarray
    end: np.ndarray
    fps: int = FPS

    def __len__(self) -> int:
        return len(self.cameras)

    def subset(self, idx) -> Timeline:
        idx = np.asarray(idx)
        return Timeline(
            self.cameras[idx], self.x_first[idx], self.x_last[idx], self.start[idx], self.end[idx], self.fps
        )


def timeline(frame_lists, camera_start=CAMERA_START, fps: int = FPS) -> Timeline:
    """Timeline of tracklets given as sequences of frame paths (or names), in temporal order."""
    cams, xf, xl = [], [], []
    for frames in frame_lists:
        if len(frames) == 0:
            raise AuxInfoError("a tracklet without frames has no time interval")
        _, c0, _, x0 = parse_frame_name(Path(frames[0]).name)
        _, c1, _, x1 = parse_frame_name(Path(frames[-1]).name)
        if c0 != c1:
            raise AuxInfoError(
                f"{frames[0]} and {frames[-1]} belong to one tracklet but name cameras {c0} and {c1}"
            )
        if not 1 <= c0 <= len(camera_start):
            raise AuxInfoError(
                f"{frames[0]}: camera {c0} has no clock offset (known: 1..{len(camera_start)})"
            )
        cams.append(c0)
        xf.append(min(x0, x1))
        xl.append(max(x0, x1))
    cams_a = np.asarray(cams, dtype=np.int64)
    offset = np.asarray(camera_start, dtype=np.int64)[cams_a - 1] - 1 if len(cams) else np.zeros(0, np.int64)
    xf_a, xl_a = np.asarray(xf, dtype=np.int64), np.asarray(xl, dtype=np.int64)
    return Timeline(cams_a, xf_a, xl_a, xf_a + offset, xl_a + offset, fps)


def overlaps(a: Timeline, b: Timeline) -> np.ndarray:
    """|a| x |b| bool: the two closed intervals share at least one instant of the common clock."""
    return np.maximum(a.start[:, None], b.start[None, :]) <= np.minimum(a.end[:, None], b.end[None, :])


def gaps_seconds(a: Timeline, b: Timeline) -> np.ndarray:
    """|a| x |b| seconds between the end of the earlier and the start of the later (0 if they overlap)."""
    gap = np.maximum(a.start[:, None], b.start[None, :]) - np.minimum(a.end[:, None], b.end[None, :])
    return np.maximum(gap, 0).astype(np.float64) / a.fps


def same_camera(a: Timeline, b: Timeline) -> np.ndarray:
    return (a.cameras[:, None] == b.cameras[None, :]).astype(np.uint8)
