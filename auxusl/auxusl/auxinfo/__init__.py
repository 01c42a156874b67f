"""Auxiliary information mined from a dataset's own frame names and camera ids (DukeV only).

timeline.py   camera and time interval of a tracklet, on DukeMTMC's common clock
sts.py        the spatio-temporal plausibility p_ij (our label-free estimator)
build.py      the six relations (TOC, SCP, STS x train, infer) for a dataset
store.py      the .npz files: writing, and loading aligned by tracklet key
"""

from .build import build_aux, write_aux
from .store import FILES, FORMAT, AuxFile
from .sts import STSModel, fit_sts
from .timeline import Timeline, gaps_seconds, overlaps, same_camera, timeline

__all__ = [
    "build_aux",
    "write_aux",
    "FILES",
    "FORMAT",
    "AuxFile",
    "STSModel",
    "fit_sts",
    "Timeline",
    "gaps_seconds",
    "overlaps",
    "same_camera",
    "timeline",
]
