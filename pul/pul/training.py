"""Keras fit with the PUL batch stream, per-epoch checkpoints and a NaN guard; run utilities
(seeding, log tee, TensorBoard scalars)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from . import PULError
from .model import reseed_dropout


class TrainingDivergedError(PULError):
    """The loss became NaN or infinite."""


def set_seeds(seed: int, deterministic: bool = False) -> None:
    """Python, NumPy, TensorFlow and Keras seeds; optionally deterministic TF ops."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(int(seed))
    # a seeded global generator (required before its state can be read under op determinism)
    tf.random.set_global_generator(tf.random.Generator.from_seed(int(seed)))
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def epoch_seed(*parts: int) -> int:
    """A 31-bit seed derived from (run seed, stage, iteration, epoch, ...)."""
    import numpy as np
    return int(np.random.default_rng([int(p) for p in parts]).integers(2**31 - 1))


def _callback_base():
    import keras
    return keras.callbacks.Callback


class EpochHooks(_callback_base()):
    """Reseeds Dropout at every epoch start, watches the loss for NaN/inf after every batch, and
    calls ``on_epoch_done(epochs_done, logs)`` (checkpoint + state) at every clean epoch end."""

    def __init__(self, seed_parts: tuple, on_epoch_done=None):
        super().__init__()
        self.seed_parts = tuple(seed_parts)
        self.on_epoch_done = on_epoch_done
        self.diverged = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        reseed_dropout(self.model, epoch_seed(*self.seed_parts, epoch))

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = (self._epoch, batch, float(loss))
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is None and self.on_epoch_done is not None:
            self.on_epoch_done(epoch + 1, dict(logs or {}))


def fit(model, stream, epochs: int, steps: int, initial_epoch: int = 0, seed_parts: tuple = (0,),
        on_epoch_done=None, where: str = "training", verbose=None, callbacks=()):
    """model.fit over epochs [initial_epoch, epochs) of ``steps`` batches of ``stream``; the stream
    starts at batch initial_epoch * steps, so a resumed run sees the batches an uninterrupted one
    would. Raises TrainingDivergedError on a NaN/inf loss (nothing is saved for that epoch)."""
    import keras
    if initial_epoch >= epochs:
        return None
    hooks = EpochHooks(seed_parts, on_epoch_done)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    history = model.fit(stream.generator(initial_epoch * steps), steps_per_epoch=steps, epochs=epochs,
                        initial_epoch=initial_epoch, verbose=verbose, shuffle=False,
                        callbacks=[keras.callbacks.TerminateOnNaN(), hooks, *callbacks])
    if hooks.diverged is not None:
        e, b, loss = hooks.diverged
        raise TrainingDivergedError(
            f"the loss became {loss} during {where}, epoch {e + 1}, step {b + 1}: training diverged. "
            "Lower the learning rate (--lr) or check the input images; the last good checkpoint is kept "
            "and --resume continues from it")
    return history


class Tee:
    """Copies everything written to a stream into a log file (log.txt)."""

    def __init__(self, stream, path, mode: str = "a"):
        self.stream = stream
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, mode, buffering=1)

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def isatty(self):
        return self.stream.isatty()

    def fileno(self):
        return self.stream.fileno()

    def close(self):
        self.file.close()


class Scalars:
    """TensorBoard scalars through tf.summary (one events folder per run)."""

    def __init__(self, folder):
        import tensorflow as tf
        self.tf = tf
        self.writer = tf.summary.create_file_writer(str(folder))

    def log(self, step: int, **values):
        with self.writer.as_default():
            for k, v in values.items():
                if v is not None and math.isfinite(float(v)):
                    self.tf.summary.scalar(k, float(v), step=int(step))
        self.writer.flush()

    def close(self):
        self.writer.close()
