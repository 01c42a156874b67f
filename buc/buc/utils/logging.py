"""Everything printed goes to the console and to log.txt (Open-ReID's Logger, as a context)."""
from __future__ import annotations

import os
import sys


class Logger:
    """A stdout replacement writing to the console and to a file.

    ``with Logger(path):`` installs it as ``sys.stdout`` and restores the previous stdout on exit
    (the original replaced ``sys.stdout`` for good). ``append=True`` continues a log on resume.
    """

    def __init__(self, fpath: str | os.PathLike | None = None, append: bool = False):
        self.console = sys.stdout
        self.file = None
        if fpath is not None:
            os.makedirs(os.path.dirname(os.path.abspath(fpath)), exist_ok=True)
            self.file = open(fpath, "a" if append else "w", buffering=1)  # line-buffered

    def __enter__(self):
        self.console = sys.stdout
        sys.stdout = self
        return self

    def __exit__(self, *exc):
        sys.stdout = self.console
        self.close()

    def write(self, msg: str):
        self.console.write(msg)
        if self.file is not None:
            self.file.write(msg)

    def flush(self):
        self.console.flush()
        if self.file is not None:
            self.file.flush()

    def isatty(self) -> bool:
        return False

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None
