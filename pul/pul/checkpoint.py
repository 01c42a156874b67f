"""Atomic checkpoints and the PUL run state (what ``--resume`` restores).

* Keras models: ``model.save`` into a temporary ``.keras`` file in the same folder, then
  ``os.replace`` (a crash leaves the previous file intact). A compiled model's file holds the
  optimizer state (SGD momentum, iteration counter).
* The run state ``state.json``: stage (baseline / pul), iteration, epochs finished inside the
  iteration, history, best metric, file names; ``selection_<t>.npz``: iteration t's selected
  images, pseudo-labels and k-means labels; ``state.rng.pkl``: the RNG states of Python, NumPy
  and TensorFlow. Every random draw of a run is derived from (seed, stage,
  iteration, epoch, step), so these states are restored for completeness, not because the
  future depends on them.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import tempfile
from pathlib import Path

import numpy as np

from . import PULError


def _tmp_in(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
    os.close(fd)
    return Path(tmp)


def atomic_replace(tmp: Path, path: Path) -> Path:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def save_model(model, path) -> Path:
    """model.save(path) through a temporary file and a rename."""
    path = Path(path)
    tmp = _tmp_in(path, ".keras")
    try:
        model.save(tmp)
        return atomic_replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_json(obj, path) -> Path:
    from common_eval.results import atomic_write_text
    return atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def load_json(path) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PULError(f"cannot read the run state '{path}' ({exc})") from exc


def save_arrays(path, **arrays) -> Path:
    path = Path(path)
    tmp = _tmp_in(path, ".npz")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return atomic_replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_arrays(path) -> dict:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def rng_states() -> dict:
    import tensorflow as tf
    return {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002 (the global state)
            "tensorflow": tf.random.get_global_generator().state.numpy()}


def save_rng(path) -> Path:
    path = Path(path)
    tmp = _tmp_in(path)
    with open(tmp, "wb") as f:
        pickle.dump(rng_states(), f)
    return atomic_replace(tmp, path)


def restore_rng(path) -> None:
    import tensorflow as tf
    with open(path, "rb") as f:
        s = pickle.load(f)
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])  # noqa: NPY002
    tf.random.get_global_generator().reset(s["tensorflow"])


class RunState:
    """state.json (progress, history, file names) + state.rng.pkl in one folder, written atomically.
    Arrays (the selection of an iteration) go to their own files (save_arrays), named per
    iteration, so that a crash between two writes never pairs a state with the wrong arrays."""

    def __init__(self, folder, name: str = "state"):
        self.folder = Path(folder)
        self.json = self.folder / f"{name}.json"
        self.rng = self.folder / f"{name}.rng.pkl"

    def exists(self) -> bool:
        return self.json.is_file()

    def save(self, state: dict) -> None:
        save_rng(self.rng)
        save_json(state, self.json)

    def load(self) -> dict:
        state = load_json(self.json)
        if self.rng.is_file():
            restore_rng(self.rng)
        return state

    def clear(self) -> None:
        for p in (self.json, self.rng):
            if p.exists():
                p.unlink()
