"""Checkpoints: written atomically (``runfiles.atomic_write``: a temporary file in the same
folder, fsync, the umask's mode, then os.replace; a full disk is one line and leaves the previous
file intact), read with ``weights_only=True`` (``runfiles.safe_torch_load``: tensors, numbers,
strings, lists and dicts only; a file that would run code is refused without running it)."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import torch

from ..errors import CheckpointError
from .runfiles import RunError, atomic_write, safe_torch_load

FORMAT = "auxusl-checkpoint-1"


def save_checkpoint(state: dict, path) -> Path:
    path = Path(path)

    def write(f):
        try:
            torch.save(state, f)
        except RuntimeError as exc:  # torch wraps a failed write ("unexpected pos", "file write failed")
            free = shutil.disk_usage(path.parent).free if path.parent.exists() else 0
            full = isinstance(exc.__cause__, OSError) and exc.__cause__.errno in (errno.ENOSPC, errno.EDQUOT)
            if full or free < 2**20:
                raise OSError(errno.ENOSPC, "No space left on device") from None
            raise

    try:
        return atomic_write(path, write)
    except RunError:
        raise
    except OSError as exc:  # raised outside the temporary file's write
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_checkpoint(path) -> dict:
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a dict), got {type(obj).__name__}")
    return obj


def strip_module(state_dict: dict) -> dict:
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def copy_weights(model, state_dict: dict, source, allow_missing_classifier: bool = True) -> None:
    """Loads weights into ``model``; a checkpoint saved without its classifier (the original's
    REMAIN_CLASSIFIER False) keeps the model's classifier. Anything else that does not fit is
    a CheckpointError."""
    state_dict = strip_module(state_dict)
    own = model.state_dict()
    missing = [
        k
        for k in own
        if k not in state_dict and not (allow_missing_classifier and k.startswith("classifier."))
    ]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = [
            f"{name}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong))
            if keys
        ]
        raise CheckpointError(
            f"the weights in {source} do not fit the model built from the configuration "
            f"(MODEL.ARCH, MODEL.BACKBONE.LAST_STRIDE, dataset size): {'; '.join(parts)}"
        )
    with torch.no_grad():
        for k, v in state_dict.items():
            own[k].copy_(v)
