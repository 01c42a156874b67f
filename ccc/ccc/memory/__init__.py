"""Cluster memories, one file each, and the name -> class factory of ``--cm-mode``.

3C's command line offers cm (Vanilla), cm_hard (Hard), tccl_camera (TCCL) and hd_camera (CHD,
the paper's method); its code also holds cm_camera and cm_hard_camera, available here too.
"""
from __future__ import annotations

from .base import ClusterMemory
from .cm import CM
from .cm_camera import CMCamera
from .cm_hard import CMHard
from .cm_hard_camera import CMHardCamera
from .hd_camera import HDCamera
from .tccl_camera import TCCLCamera

_FACTORY = {cls.name: cls for cls in (CM, CMHard, TCCLCamera, HDCamera, CMCamera, CMHardCamera)}
CLI_MODES = ("cm", "cm_hard", "tccl_camera", "hd_camera")   # 3C's --cm-mode choices


def names() -> list[str]:
    return list(_FACTORY)


def create_memory(mode: str, num_features: int, num_clusters: int, temp: float = 0.05,
                  momentum: float = 0.2) -> ClusterMemory:
    if mode not in _FACTORY:
        raise ValueError(f"unknown --cm-mode {mode!r}; valid: {', '.join(names())}")
    return _FACTORY[mode](num_features, num_clusters, temp=temp, momentum=momentum)


__all__ = ["ClusterMemory", "CM", "CMHard", "CMCamera", "CMHardCamera", "TCCLCamera", "HDCamera",
           "CLI_MODES", "create_memory", "names"]
