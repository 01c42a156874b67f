"""Video dataset loaders, one file per dataset, and the name -> constructor factory.

from auxusl.datasets import create
dataset = create("duke", "/data/DukeMTMC-VideoReID", mode="dense", dense_step=40)
dataset.train, dataset.query, dataset.gallery   # (frame_paths, pid, camid), sorted
"""

from __future__ import annotations

from .base import Tracklet, VideoDataset, tracklet_key
from .dukevideo import DukeMTMCVideoReID
from .mars import MARS

ALIASES = {"dukevideo": "duke", "dukemtmcvidreid": "duke", "mars": "mars", "duke": "duke"}
NOT_PORTED = {
    "duke_track": "the original's undocumented DukeMTMC-Track variant (auto-generated "
    "training tracklets that are not distributed) is not ported"
}
FOLDERS = {"mars": "MARS", "duke": "DukeMTMC-VideoReID"}
SHORT = {"mars": "mars", "duke": "dukevideo"}  # the monorepo's short names (results.json)


def names() -> list[str]:
    return sorted(FOLDERS)


def canonical(name: str) -> str:
    key = str(name).lower()
    if key in NOT_PORTED:
        raise ValueError(f"DATASETS.TARGET '{name}': {NOT_PORTED[key]}")
    if key not in ALIASES:
        raise ValueError(f"unknown dataset DATASETS.TARGET '{name}'; valid: mars, duke (= dukevideo)")
    return ALIASES[key]


def create(
    name: str,
    root,
    *,
    info_dir: str = "info",
    mars_gallery: str = "torchreid",
    mode: str = "all",
    dense_step: int = 32,
    verbose: bool = True,
) -> VideoDataset:
    """The dataset ``name`` whose official folder is ``root``."""
    key = canonical(name)
    if key == "mars":
        return MARS(root, info_dir=info_dir, gallery=mars_gallery, verbose=verbose)
    return DukeMTMCVideoReID(root, mode=mode, dense_step=dense_step, verbose=verbose)


__all__ = [
    "Tracklet",
    "VideoDataset",
    "tracklet_key",
    "MARS",
    "DukeMTMCVideoReID",
    "create",
    "names",
    "canonical",
    "FOLDERS",
    "SHORT",
]
