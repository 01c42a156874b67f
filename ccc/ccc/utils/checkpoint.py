"""Checkpoints: written atomically (``runfiles.torch_save_atomic``: a temporary file in the same
folder, the umask's mode, then os.replace; a full disk is one error line), read with
``runfiles.safe_torch_load`` (``weights_only=True``: tensors, numbers, strings, lists and dicts
only; a file that would run code is refused without running it)."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError
from .runfiles import safe_torch_load, torch_save_atomic

FORMAT = "ccc-checkpoint-1"


def save_checkpoint(state: dict, path) -> Path:
    return torch_save_atomic(state, path)


def load_checkpoint(path) -> dict:
    path = Path(path)
    obj = safe_torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a checkpoint (a dict), got {type(obj).__name__}")
    return obj


def repair_original_keys(state_dict: dict) -> dict:
    """Keys of an original 3C checkpoint (``model_best.pth``) back to the model's names.

    3C saves ``k.strip('module.')``: a *character-set* strip, not a prefix strip. It removes the
    DataParallel prefix as intended, but also the trailing "ed" of ``num_batches_tracked``
    ("...num_batches_track"), which is why 3C itself loads with ``strict=False``. Both are undone
    here; a real 'module.' prefix is removed too.
    """
    out = {}
    for k, v in state_dict.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.endswith("num_batches_track"):
            k += "ed"
        out[k] = v
    return out


def model_state(checkpoint: dict) -> dict:
    """The model weights of one of our checkpoints ('model'), or of an original 3C checkpoint
    (a bare state dict with mangled keys, or one under 'state_dict')."""
    if "model" in checkpoint and isinstance(checkpoint["model"], dict):
        return checkpoint["model"]
    if "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], dict):
        return repair_original_keys(checkpoint["state_dict"])
    if checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        return repair_original_keys(checkpoint)
    keys = ", ".join(sorted(checkpoint)[:8])
    raise CheckpointError(f"the checkpoint holds no model weights (keys: {keys})")


def load_model_state(model, state_dict: dict, source) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(f"the weights in {source} do not fit the model built from the "
                              f"given flags (--arch, --pooling-type): "
                              f"{' '.join(first[:3])[:400]}") from None
