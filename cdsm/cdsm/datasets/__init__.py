"""Dataset loaders, one file per dataset, and the name -> constructor factory.

    from cdsm.datasets import create, names
    dataset = create("market1501", "/data")   # -> .train, .query, .gallery: (path, pid, camid)
"""
from __future__ import annotations

from .base import Item, ReIDImageDataset
from .dukemtmcreid import DukeMTMCreID
from .market1501 import Market1501
from .msmt17 import MSMT17

_FACTORY = {cls.name: cls for cls in (Market1501, DukeMTMCreID, MSMT17)}

# the original's other names, which CDSM does not report and this reproduction does not load
_NOT_PORTED = ("personx", "celebreid")

# the monorepo's short names (./reproduce.sh's vocabulary), accepted beside the original's
ALIASES = {"market": "market1501", "duke": "dukemtmcreid", "msmt": "msmt17"}
_OTHER_METHODS = ("cuhk03", "veri", "mars", "dukevideo")


def canonical_name(name: str) -> str:
    """The original's dataset name for ``name`` (``market`` -> ``market1501``, ``duke`` ->
    ``dukemtmcreid``); other names are returned as they are."""
    return ALIASES.get(str(name).lower(), str(name))


def dataset_arg(text: str) -> str:
    """argparse type of ``-d/--dataset``: the original's names and the short aliases."""
    import argparse
    if str(text).lower() in _OTHER_METHODS:
        raise argparse.ArgumentTypeError(f"CDSM does not report {text} (the paper's datasets: market, duke, "
                                         f"msmt17; as the original names them: {', '.join(names())})")
    return canonical_name(text)


def names() -> list[str]:
    return sorted(_FACTORY)


def create(name: str, data_dir, verbose: bool = True) -> ReIDImageDataset:
    """The dataset ``name`` (see ``names()``) found under ``data_dir``."""
    name = canonical_name(name)
    if name not in _FACTORY:
        extra = (f" ('{name}' is in the original code but not reported by the paper and not ported)"
                 if name in _NOT_PORTED else "")
        raise ValueError(f"unknown dataset '{name}'{extra}; valid: {', '.join(names())}")
    return _FACTORY[name](data_dir, verbose=verbose)


__all__ = ["Item", "ReIDImageDataset", "Market1501", "DukeMTMCreID", "MSMT17", "create", "names",
           "canonical_name", "dataset_arg"]
