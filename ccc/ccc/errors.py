"""Errors that name a problem with the user's input or run, and its fix.

``examples/train.py`` and ``examples/test.py`` print these as one ``error: ...`` line and exit
with status 2, without a stack trace; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class CCCError(Exception):
    """Base class: a problem the user can fix (bad data, missing file, diverged run)."""


class DatasetError(CCCError):
    """The dataset folder is missing or does not have the official layout."""


class CorruptImageError(CCCError):
    """An image file cannot be decoded."""


class PretrainedWeightsError(CCCError):
    """ImageNet (or IBN) weights are neither cached nor downloadable, or do not fit the model."""


class ClusteringError(CCCError):
    """A clustering cannot run with the given settings (e.g. more clusters than samples)."""


class NoClusterError(ClusteringError):
    """The clustering left no usable cluster: every training image is an outlier."""


class NonFiniteLossError(CCCError):
    """The training loss became NaN or infinite."""


class CheckpointError(CCCError):
    """A checkpoint cannot be read or does not fit the model."""


def short_message(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it.

    A worker's exception comes back with its whole traceback in the message; the last line
    ("CorruptImageError: cannot read ...") is the part that names the problem.
    """
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        name = type(exc).__name__ + ": "
        text = last[len(name):] if last.startswith(name) else last
    return text


class InputError(CCCError):
    """The images given to feature extraction or export are missing, empty or unusable."""
