"""Run utilities: checkpoints, logging/TensorBoard, seeding and RNG states."""

from .checkpoint import copy_weights, load_checkpoint, save_checkpoint
from .seed import get_rng_state, seed_everything, set_rng_state

__all__ = [
    "copy_weights",
    "load_checkpoint",
    "save_checkpoint",
    "get_rng_state",
    "seed_everything",
    "set_rng_state",
]
