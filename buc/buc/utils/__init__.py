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
    """Every random state that decides the future of a run (for checkpoints)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
