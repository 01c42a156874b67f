"""Errors that name a problem with the user's input or run, and its fix.

``examples/train.py`` and ``examples/test.py`` print these as one ``error: ...`` line and exit
with status 2, without a stack trace; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AuxUSLError(Exception):
    """Base class: a problem the user can fix (bad data, missing file, diverged run)."""


class ConfigError(AuxUSLError):
    """A configuration key that does not exist, a value of the wrong type, a bad file."""


class DatasetError(AuxUSLError):
    """The dataset folder is missing or does not have the official layout."""


class CorruptImageError(AuxUSLError):
    """A frame cannot be decoded."""


class PretrainedWeightsError(AuxUSLError):
    """ImageNet weights are neither cached nor downloadable, or do not fit the model."""


class NoClusterError(AuxUSLError):
    """(IC)DBSCAN found no cluster: every training tracklet is an outlier."""


class NonFiniteLossError(AuxUSLError):
    """The training loss became NaN or infinite."""


class CheckpointError(AuxUSLError):
    """A checkpoint cannot be read or does not fit the model."""


class AuxInfoError(AuxUSLError):
    """An auxiliary-information file is missing, unreadable, or does not match the dataset."""


def short_message(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it."""
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        name = type(exc).__name__ + ": "
        text = last[len(name) :] if last.startswith(name) else last
    return text
