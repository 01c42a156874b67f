"""Checkpoints: written atomically (``runfiles.atomic_write``: a temporary file in the same folder,
the umask's mode, then os.replace; a full disk is one line and the previous file stays), read with
``weights_only=True`` (``runfiles.safe_torch_load``: tensors, numbers, strings, lists and dicts;
numpy scalars, which the original CDSM stored as ``best_mAP``, are allowed by name)."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from .runfiles import atomic_write, safe_torch_load

FORMAT = "cdsm-checkpoint-1"


def _numpy_scalar_globals() -> list:
    """What unpickling a numpy scalar needs (the original's ``'best_mAP': np.mean(aps)``): the
    scalar reconstructor under its numpy 2 and numpy 1 module names, and ``numpy.dtype``."""
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar
    return [(scalar, "numpy._core.multiarray.scalar"), (scalar, "numpy.core.multiarray.scalar"), np.dtype,
            *(type(np.dtype(c)) for c in "?bhilqBHILQefdgFDG")]


LEGACY_GLOBALS = _numpy_scalar_globals()


def save_checkpoint(state: dict, path) -> Path:
    path = Path(path)

    def write(f):
        try:
            torch.save(state, f)
        except RuntimeError as exc:
            # torch reports a failed write of its zip container as a RuntimeError ("[enforce fail
            # at inline_container.cc:...] . unexpected pos" / "file write failed"): an OSError
            # again, ENOSPC when the disk is (nearly) full, so that atomic_write prints its line
            text = str(exc)
            if "unexpected pos" not in text and "write failed" not in text:
                raise
            full = shutil.disk_usage(path.parent).free < 16 * 2**20
            raise OSError(errno.ENOSPC if full else errno.EIO,
                          "No space left on device" if full else text.splitlines()[0]) from None

    return atomic_write(path, write)


def load_checkpoint(path) -> dict:
    obj = safe_torch_load(path, allowed=LEGACY_GLOBALS)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a dict), got {type(obj).__name__}")
    return obj


def checkpoint_config(checkpoint: dict) -> dict:
    """The resolved configuration a checkpoint of this reproduction was trained with (key
    "config"; "args" in checkpoints written before it was renamed); {} for the original's."""
    if checkpoint.get("format") != FORMAT:
        return {}
    config = checkpoint.get("config", checkpoint.get("args"))
    return dict(config) if isinstance(config, dict) else {}


def strip_module(state_dict: dict) -> dict:
    """Removes DataParallel's 'module.' prefix (the original's checkpoints carry it)."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def model_state(checkpoint: dict, which: str = "teacher") -> dict:
    """The weights of ``which`` (teacher/student) from one of our checkpoints, or the single
    'state_dict' of an original CDSM checkpoint (its mean model)."""
    if which in checkpoint:
        return checkpoint[which]
    if "state_dict" in checkpoint:
        return strip_module(checkpoint["state_dict"])
    raise CheckpointError(f"the checkpoint holds neither '{which}' nor 'state_dict' weights "
                          f"(keys: {', '.join(sorted(checkpoint)[:8])})")


def load_model_state(model, state_dict: dict, source) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"the weights in {source} do not fit the model built from the "
                              f"given flags (-a, --features, --pooling-type): "
                              f"{' '.join(first[:3])[:400]}") from None
