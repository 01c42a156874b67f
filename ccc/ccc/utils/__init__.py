"""Run utilities: checkpoints, logging/TensorBoard, seeding and RNG states, LR schedules."""
from .checkpoint import load_checkpoint, save_checkpoint
from .lr_scheduler import WarmupMultiStepLR, WarmupMultiStepLRv2, build_scheduler
from .seed import get_rng_state, seed_everything, set_rng_state

__all__ = ["load_checkpoint", "save_checkpoint", "get_rng_state", "seed_everything", "set_rng_state",
           "WarmupMultiStepLR", "WarmupMultiStepLRv2", "build_scheduler"]
