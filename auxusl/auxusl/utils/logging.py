"""Run logging: stdout mirrored into log.txt, the ``auxusl`` loggers printing there, TensorBoard.

``torch.utils.tensorboard`` goes through TensorBoard's compatibility layer, which imports
TensorFlow when it is installed (it is, in this monorepo's shared venv; loading it next to
torch is slow and can crash through triton). ``tensorboard_writer`` makes TensorBoard use its
own TensorFlow-free stub first (the documented ``tensorboard.compat.notf`` switch).
"""

from __future__ import annotations

import logging
import sys
import types
from contextlib import contextmanager
from pathlib import Path


class Tee:
    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def isatty(self):
        return getattr(self.stream, "isatty", lambda: False)()

    def fileno(self):
        return self.stream.fileno()


@contextmanager
def run_logging(logs_dir, filename: str = "log.txt", append: bool = False, level=logging.INFO):
    """Within the block, stdout is mirrored into ``logs_dir/filename`` and the ``auxusl``
    loggers print to it."""
    path = Path(logs_dir) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    file = open(path, "a" if append else "w", buffering=1)
    old_stdout = sys.stdout
    sys.stdout = Tee(old_stdout, file)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("auxusl")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
        sys.stdout.flush()
        sys.stdout = old_stdout
        file.close()


def report_error(message: str) -> None:
    """Prints ``message`` on stderr and, inside ``run_logging``, also into log.txt."""
    print(message, file=sys.stderr)
    if isinstance(sys.stdout, Tee):
        try:
            sys.stdout.file.write(message + "\n")
        except (OSError, ValueError):  # a full disk, a closed log: the line is on stderr
            pass


def tensorboard_writer(log_dir):
    """A ``torch.utils.tensorboard.SummaryWriter`` that never imports TensorFlow."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))
