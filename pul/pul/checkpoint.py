"""Atomic checkpoints and the PUL run state (what ``--resume`` restores).

* Keras models: ``model.save`` into a temporary ``.keras`` file in the same folder, then
  ``os.replace`` (a crash leaves the previous file intact; the file gets the umask's mode). A
  compiled model's file holds the optimizer state (SGD momentum, iteration counter). Models are
  loaded in Keras' safe mode (no code from the file). A checkpoint written by train.py also holds
  the run's resolved configuration, as the JSON member ``pul_config.json`` of the ``.keras`` zip
  (Keras ignores members it does not know; ``read_config`` reads it as plain JSON), so that
  test.py, extract.py and export.py need only the checkpoint.
* The run state ``state.json``: stage (baseline / pul), iteration, epochs finished inside the
  iteration, history, best metric, file names and the run's configuration (``config``: what
  ``--resume`` compares with the command's); ``selection_<t>.npz``: iteration t's selected
  images, pseudo-labels and k-means labels; ``state.rng.npz``: the RNG states of Python, NumPy
  and TensorFlow, as plain integer/float arrays. Every random draw of a run is derived from (seed,
  stage, iteration, epoch, step), so these states are restored for completeness, not because the
  future depends on them. Nothing is ever unpickled: JSON, ``np.load(allow_pickle=False)``; an
  old run's ``state.rng.pkl`` is not read.
"""
from __future__ import annotations

import json
import random
import zipfile
from pathlib import Path

import numpy as np

from .runfiles import RunError, atomic_write, atomic_write_path, dumps_strict

CONFIG_MEMBER = "pul_config.json"


def save_model(model, path, config: dict | None = None) -> Path:
    """model.save(path) through a temporary file and a rename; ``config`` (the run's resolved
    configuration, plain JSON values) is stored inside the file as CONFIG_MEMBER."""
    def save(tmp):
        model.save(tmp)
        if config is not None:
            text = dumps_strict(config, indent=1, sort_keys=True, default=_json_default)
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(CONFIG_MEMBER, text)
    return atomic_write_path(path, save, suffix=".keras")


def read_config(path) -> dict | None:
    """The configuration stored in a checkpoint by save_model (JSON only: nothing runs), or None
    for a file without one (a checkpoint of an earlier version) or that is not a zip (load_model
    then says what is wrong with it)."""
    try:
        with zipfile.ZipFile(path) as z:
            if CONFIG_MEMBER not in z.namelist():
                return None
            obj = json.loads(z.read(CONFIG_MEMBER).decode())
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def save_json(obj, path) -> Path:
    """Strict JSON (NaN/inf raise ValueError), written atomically."""
    text = dumps_strict(obj, indent=1, sort_keys=True, default=_json_default) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))


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
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"cannot read the run state '{path}' ({exc}); it is damaged or not a PUL state "
                       "file: start a fresh run in another --logs-dir") from None
    if not isinstance(obj, dict):
        raise RunError(f"cannot read the run state '{path}' (not a JSON object); start a fresh run in "
                       "another --logs-dir")
    return obj


def save_arrays(path, **arrays) -> Path:
    return atomic_write(path, lambda f: np.savez(f, **arrays))


def load_arrays(path) -> dict:
    """npz without pickles: an object array (which would need code to load) is refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise RunError(f"cannot load {path} safely: it holds Python objects that would run code "
                           "when loaded; only plain number arrays are read") from None
        raise RunError(f"cannot read {path} ({exc}); it is damaged: start a fresh run in another "
                       "--logs-dir") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise RunError(f"cannot read {path} ({exc}); it is damaged or not an .npz file: start a fresh "
                       "run in another --logs-dir") from None


def rng_states() -> dict:
    """Python, NumPy and TensorFlow RNG states as plain arrays (no pickle)."""
    import tensorflow as tf
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (the global state)
    return {"python_version": np.int64(version), "python_internal": np.asarray(internal, np.int64),
            "python_gauss": np.float64(np.nan if gauss is None else gauss),
            "python_has_gauss": np.int64(gauss is not None),
            "numpy_keys": np.asarray(keys, np.uint32), "numpy_pos": np.int64(pos),
            "numpy_has_gauss": np.int64(has_gauss), "numpy_cached_gaussian": np.float64(cached),
            "tensorflow": np.asarray(tf.random.get_global_generator().state.numpy())}


def save_rng(path) -> Path:
    return save_arrays(path, **rng_states())


def restore_rng(path) -> None:
    import tensorflow as tf
    s = load_arrays(path)
    try:
        gauss = float(s["python_gauss"]) if int(s["python_has_gauss"]) else None
        random.setstate((int(s["python_version"]), tuple(int(v) for v in s["python_internal"]), gauss))
        np.random.set_state(("MT19937", s["numpy_keys"], int(s["numpy_pos"]),  # noqa: NPY002
                             int(s["numpy_has_gauss"]), float(s["numpy_cached_gaussian"])))
        tf.random.get_global_generator().reset(s["tensorflow"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"cannot restore the RNG states of {path} ({exc}); it is damaged: start a fresh "
                       "run in another --logs-dir") from None


class RunState:
    """state.json (progress, history, file names, config) + state.rng.npz in one folder, written atomically.
    Arrays (the selection of an iteration) go to their own files (save_arrays), named per
    iteration, so that a crash between two writes never pairs a state with the wrong arrays."""

    def __init__(self, folder, name: str = "state"):
        self.folder = Path(folder)
        self.json = self.folder / f"{name}.json"
        self.rng = self.folder / f"{name}.rng.npz"
        self.legacy_rng = self.folder / f"{name}.rng.pkl"   # written by earlier versions; never read

    def exists(self) -> bool:
        return self.json.is_file()

    def save(self, state: dict) -> None:
        save_rng(self.rng)
        save_json(state, self.json)

    def load(self, restore: bool = True) -> dict:
        """The state (and, with restore, the RNG states are set from state.rng.npz)."""
        state = load_json(self.json)
        if self.rng.is_file():
            if restore:
                restore_rng(self.rng)
            else:
                load_arrays(self.rng)   # validated: refuses a file that would need code to load
        return state

    def clear(self) -> None:
        for p in (self.json, self.rng, self.legacy_rng):
            if p.exists():
                p.unlink()
