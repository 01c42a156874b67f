"""Cluster memories, one file each, and the name -> class factory of ``--memorybank``.

CDSM's own method is ``CMhybrid_v5``; the others are the variants its code offers (CM and
CMhard from ClusterContrast/HHCL, HHCL's CMhybrid, CDSM's intermediate v2-v4).
"""
from __future__ import annotations

import difflib

from .base import ClusterMemory
from .cm import CM
from .cm_hard import CMHard
from .cm_hybrid import CMHybrid
from .cm_hybrid_v2 import CMHybridV2
from .cm_hybrid_v3 import CMHybridV3
from .cm_hybrid_v4 import CMHybridV4
from .cm_hybrid_v5 import CMHybridV5

_FACTORY = {cls.name: cls for cls in (CM, CMHard, CMHybrid, CMHybridV2, CMHybridV3, CMHybridV4, CMHybridV5)}


def names() -> list[str]:
    return list(_FACTORY)


def resolve_name(name: str) -> tuple[str, str | None]:
    """(canonical name, warning or None). The README spells the method ``CMhybird_v5``: every
    ``CMhybird*`` is read as ``CMhybrid*`` with a warning (the released code then silently fell
    back to plain CM initialisation and crashed; spec 2.8.1)."""
    if name in _FACTORY:
        return name, None
    fixed = name.replace("hybird", "hybrid")
    if fixed in _FACTORY:
        return fixed, (f"--memorybank {name} (the README's spelling) is read as {fixed}; the "
                       "released code did not recognise the misspelt name")
    close = difflib.get_close_matches(name, names(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"unknown memory bank {name!r}{hint}; valid: {', '.join(names())}")


def create_memory(name: str, num_features: int, num_clusters: int, **kwargs) -> ClusterMemory:
    """``create_memory("CMhybrid_v5", 2048, C, temp=0.05, momentum=0.05, mem_instances=4,
    hard_weight=0.5, smooth=0)`` (uninitialised: call ``.initialise(...)``)."""
    canonical, _ = resolve_name(name)
    return _FACTORY[canonical](num_features, num_clusters, **kwargs)


__all__ = ["ClusterMemory", "CM", "CMHard", "CMHybrid", "CMHybridV2", "CMHybridV3", "CMHybridV4",
           "CMHybridV5", "create_memory", "names", "resolve_name"]
