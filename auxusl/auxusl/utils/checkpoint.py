"""Checkpoints: written atomically (a temporary file in the same folder, then os.replace), read
with ``weights_only=True`` (tensors, numbers, strings, lists and dicts only)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError

FORMAT = "auxusl-checkpoint-1"


def save_checkpoint(state: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} (RESUME) does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets the same message
        raise CheckpointError(
            f"cannot read checkpoint {path} ({exc}); it may be truncated or not a PyTorch checkpoint"
        ) from None
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
