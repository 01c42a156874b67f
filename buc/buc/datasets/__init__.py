"""Dataset factory: name -> constructor (Open-ReID's ``datasets.create``).

Names are the original's (``market1501``, ``duke``, ``mars``, ``DukeMTMC-VideoReID``) plus the
monorepo's short and long aliases (``market``, ``dukemtmcreid``, ``dukevideo``).
"""
from __future__ import annotations

from .base import DatasetNotFoundError, MalformedDatasetError, ReIDDataset
from .dukemtmcreid import DukeMTMCreID
from .dukevideo import DukeMTMCVideoReID
from .market1501 import Market1501
from .mars import Mars

__factory = {
    "market1501": Market1501,
    "duke": DukeMTMCreID,
    "mars": Mars,
    "DukeMTMC-VideoReID": DukeMTMCVideoReID,
}
_aliases = {"market": "market1501", "dukemtmcreid": "duke", "dukemtmc": "duke",
            "dukevideo": "DukeMTMC-VideoReID"}

__all__ = ["DatasetNotFoundError", "MalformedDatasetError", "ReIDDataset", "Market1501", "DukeMTMCreID",
           "Mars", "DukeMTMCVideoReID", "names", "get_class", "create"]


def names(aliases: bool = False) -> list[str]:
    return sorted(__factory) + (sorted(_aliases) if aliases else [])


def get_class(name: str) -> type[ReIDDataset]:
    key = _aliases.get(name, name)
    if key not in __factory:
        raise KeyError(f"unknown dataset {name!r}; valid names: {', '.join(names(aliases=True))}")
    return __factory[key]


def create(name: str, root, *args, **kwargs) -> ReIDDataset:
    """A dataset instance; ``root`` is the data root holding the official folder."""
    return get_class(name)(root, *args, **kwargs)
