"""Checkpoints: written atomically (a temporary file in the same folder, then os.replace), read
with ``weights_only=True`` (tensors, numbers, strings, lists and dicts only)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError

FORMAT = "cdsm-checkpoint-1"


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
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets the same message
        raise CheckpointError(f"cannot read checkpoint {path} ({exc}); it may be truncated or "
                              "not a PyTorch checkpoint") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a dict), got {type(obj).__name__}")
    return obj


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
