"""Small helpers shared by the package (Open-ReID's utils)."""
from __future__ import annotations

import random

import numpy as np
import torch


def to_numpy(tensor) -> np.ndarray:
    if torch.is_tensor(tensor):
        return tensor.detach().cpu().numpy()
    if isinstance(tensor, np.ndarray):
        return tensor
    raise ValueError(f"cannot convert {type(tensor)} to numpy array")


def to_torch(array) -> torch.Tensor:
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    if torch.is_tensor(array):
        return array
    raise ValueError(f"cannot convert {type(array)} to torch tensor")


def set_seed(seed: int) -> None:
    """Seeds python, numpy and torch (the original sets no seed; see README, deviations)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002  (global state, as the original)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every random state that decides the future of a run (for checkpoints), as tensors, numbers
    and strings only, so that the checkpoint loads with torch.load(weights_only=True)."""
    npst = np.random.get_state(legacy=False)  # noqa: NPY002
    numpy_state = {"bit_generator": npst["bit_generator"],
                   "key": torch.from_numpy(npst["state"]["key"].astype(np.int64)),
                   "pos": int(npst["state"]["pos"]), "has_gauss": int(npst["has_gauss"]),
                   "gauss": float(npst["gauss"])}
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    st = state["numpy"]
    if isinstance(st, dict):
        key = np.asarray(st["key"].numpy() if torch.is_tensor(st["key"]) else st["key"]).astype(np.uint32)
        np.random.set_state({"bit_generator": st["bit_generator"],  # noqa: NPY002
                             "state": {"key": key, "pos": int(st["pos"])},
                             "has_gauss": int(st["has_gauss"]), "gauss": float(st["gauss"])})
    else:   # a legacy tuple (checkpoints before the safe format), read through plain()
        name, key, pos, has_gauss, gauss = st
        key = np.asarray(key.numpy() if torch.is_tensor(key) else key).astype(np.uint32)
        np.random.set_state((name, key, int(pos), int(has_gauss), float(gauss)))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
