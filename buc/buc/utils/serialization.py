"""JSON and checkpoint I/O, through ``runfiles``: every write is atomic (a temporary file in the
same folder, then ``os.replace``; the umask's mode; a full disk is one error line with the previous
file intact), every JSON is strict (no NaN/Infinity), and every checkpoint is read with
``torch.load(weights_only=True)``: a file that would run code when unpickled is refused."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from .runfiles import FULL, RunError, atomic_write, dumps_strict, safe_torch_load


def _numpy_globals() -> list:
    """What legacy checkpoints need to rebuild numpy scalars and arrays (Open-ReID's and the
    original BUC's ``best_top1`` is a numpy.float64; this project's checkpoints before the safe
    format held numpy labels and numpy's RNG state). Allowed by name: these reconstruct data,
    they run no code. Pickles written by numpy 1.x name ``numpy.core``, numpy 2 ``numpy._core``."""
    from numpy._core import multiarray
    dtype_classes = [type(np.dtype(t)) for t in
                     ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                      "float16", "float32", "float64", "complex64", "complex128")]
    out = [np.dtype, np.ndarray, multiarray.scalar, multiarray._reconstruct, *dtype_classes,
           (multiarray.scalar, "numpy.core.multiarray.scalar"),
           (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    return out


LEGACY_GLOBALS = _numpy_globals()


def read_json(fpath):
    with open(fpath) as f:
        return json.load(f)


def write_json(obj, fpath, indent: int | None = 1) -> Path:
    """Strict JSON (a NaN or infinite value raises ValueError), written atomically."""
    data = (dumps_strict(obj, indent=indent, separators=(",", ": ")) + "\n").encode()
    return atomic_write(fpath, lambda f: f.write(data))


def plain(obj):
    """numpy scalars -> Python numbers, numpy arrays -> tensors, recursively: what a checkpoint
    holds must load with weights_only=True without any allowance."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(state: dict, fpath) -> Path:
    """torch.save through a temporary file and os.replace. torch reports a full disk as a
    RuntimeError from its zip writer; it becomes the same 'no space left' RunError."""
    fpath = Path(fpath)

    def write(f):
        try:
            torch.save(state, f)
        except RuntimeError as exc:
            f.flush()
            free = shutil.disk_usage(fpath.parent).free
            if "write" in str(exc) or "unexpected pos" in str(exc) or free < 2**20:
                raise OSError(FULL[0], "No space left on device") from exc
            raise
    return atomic_write(fpath, write)


def load_checkpoint(fpath, map_location="cpu") -> dict:
    """A checkpoint read safely (weights_only=True; numpy scalars/arrays of legacy files allowed
    by name and converted to Python numbers/tensors). RunError if missing, unsafe or unreadable."""
    state = safe_torch_load(fpath, allowed=LEGACY_GLOBALS)
    if not isinstance(state, dict):
        raise RunError(f"{fpath} is not a checkpoint (it holds a {type(state).__name__}, not a dict)")
    state = plain(state)
    if map_location not in (None, "cpu"):
        state = {k: (v.to(map_location) if torch.is_tensor(v) else v) for k, v in state.items()}
    return state
