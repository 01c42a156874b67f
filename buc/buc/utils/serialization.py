"""JSON and checkpoint I/O. Every write is atomic: a temporary file in the same folder, then
``os.replace``, so an interrupted run never leaves a half-written checkpoint behind."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def _atomic(path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_json(fpath):
    with open(fpath) as f:
        return json.load(f)


def write_json(obj, fpath, indent: int | None = 1) -> Path:
    data = (json.dumps(obj, indent=indent, separators=(",", ": ")) + "\n").encode()
    return _atomic(fpath, lambda f: f.write(data))


def save_checkpoint(state: dict, fpath) -> Path:
    """torch.save through a temporary file and os.replace."""
    return _atomic(fpath, lambda f: torch.save(state, f))


def load_checkpoint(fpath, map_location="cpu") -> dict:
    fpath = Path(fpath)
    if not fpath.is_file():
        raise FileNotFoundError(f"no checkpoint found at '{fpath}'")
    # our checkpoints hold numpy RNG states and plain python objects besides tensors
    return torch.load(fpath, map_location=map_location, weights_only=False)
