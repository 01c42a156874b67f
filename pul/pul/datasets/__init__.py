"""Dataset loaders: name -> constructor. Each returns an ImageDataset of (path, pid, camid) records."""
from __future__ import annotations

from .base import DatasetError, ImageDataset
from .cuhk03 import cuhk03
from .dukemtmcreid import dukemtmcreid
from .market1501 import market1501

_FACTORY = {"market1501": market1501, "dukemtmcreid": dukemtmcreid, "cuhk03": cuhk03}
# the short names of ../reproduce.sh
ALIASES = {"market": "market1501", "duke": "dukemtmcreid", "cuhk": "cuhk03"}
# what k-means K the original sets for each target (PUL/unsupervised.py NUM_CLUSTER)
NUM_CLUSTERS = {"market1501": 750, "dukemtmcreid": 700, "cuhk03": 750}
NAMES = tuple(_FACTORY)


def canonical_name(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in _FACTORY:
        raise DatasetError(f"unknown dataset {name!r}; valid: {', '.join(NAMES)} "
                           f"(short names: {', '.join(ALIASES)})")
    return key


def init_dataset(name: str, root, **kwargs) -> ImageDataset:
    """init_dataset('market1501', '/data') -> ImageDataset (prints nothing; see .summary())."""
    return _FACTORY[canonical_name(name)](root, **kwargs)


__all__ = ["ALIASES", "DatasetError", "ImageDataset", "NAMES", "NUM_CLUSTERS", "canonical_name",
           "init_dataset"]
