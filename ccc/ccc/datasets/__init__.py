"""Dataset loaders, one file per dataset, and the name -> constructor factory (3C's
``--dataset`` names: market1501, msmt17, veri).

    from ccc.datasets import create, names
    dataset = create("market1501", "~/Dataset")   # -> .train, .query, .gallery: (path, pid, camid)
"""
from __future__ import annotations

from .base import Item, ReIDImageDataset
from .market1501 import Market1501
from .msmt17 import MSMT17
from .veri import VeRi

_FACTORY = {cls.name: cls for cls in (Market1501, MSMT17, VeRi)}


def names() -> list[str]:
    return sorted(_FACTORY)


def create(name: str, root_dir, verbose: bool = True) -> ReIDImageDataset:
    """The dataset ``name`` (see ``names()``) found under ``root_dir``."""
    if name not in _FACTORY:
        raise ValueError(f"unknown dataset '{name}'; valid: {', '.join(names())}")
    return _FACTORY[name](root_dir, verbose=verbose)


__all__ = ["Item", "ReIDImageDataset", "Market1501", "MSMT17", "VeRi", "create", "names"]
