"""Run files: atomic writes, the run-folder guard, the resume rule, finite float flags and safe
loading. The same rules and messages in all five methods of this repository (README, "Runs and
resume"):

  * a fresh run refuses a folder that already holds a run (a checkpoint or results.json);
  * --resume refuses a command whose configuration differs from the checkpoint's in anything
    but run plumbing (paths, workers, threads, device, progress/printing); the line lists them;
  * every write is atomic, keeps the umask's mode, cleans temp files of killed writes at the
    next start, and a full disk ends in one line with the previous file intact;
  * every load is safe: torch.load(weights_only=True), JSON; never pickle.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import CCCError


class RunError(CCCError):
    """Printed by main() as one 'error: ...' line, exit 2."""


# ------------------------------------------------------------------------------ atomic writes
# what tempfile.mkstemp(prefix=".NAME.", suffix=".tmp") makes
_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def atomic_write(path, write, suffix: str = "") -> Path:
    """write(f) into a temporary file in the same folder, fsync, chmod to the umask's mode
    (0644 under umask 022: mkstemp's 0600 would hide the file from colleagues), os.replace.
    A failed write removes its temporary file and leaves the previous file untouched; a full disk
    becomes RunError('no space left on device while writing PATH (N MB)')."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        size = os.path.getsize(tmp) if os.path.exists(tmp) else 0
        if os.path.exists(tmp):
            os.unlink(tmp)
        if exc.errno in FULL:
            raise RunError(f"no space left on device while writing {path} ({size / 2**20:.1f} MB)") from None
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def torch_save_atomic(state, path) -> Path:
    """torch.save through atomic_write. torch wraps a full disk's OSError in a RuntimeError
    ("[enforce fail at inline_container.cc:...] unexpected pos" / "file write failed"); that is
    mapped to the same 'no space left on device' RunError when the folder has no room left."""
    import torch
    path = Path(path)
    def write(f):
        try:
            torch.save(state, f)
        except RuntimeError as exc:
            cause = exc.__cause__ or exc.__context__
            full = isinstance(cause, OSError) and cause.errno in FULL
            text = str(exc)
            if not full and ("unexpected pos" in text or "file write failed" in text
                             or "No space left" in text):
                full = shutil.disk_usage(path.parent).free < 2**20
            if full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
            raise

    return atomic_write(path, write)


def remove_stale_tmp(folder) -> list[Path]:
    """At the start of a run (fresh or resume): delete the temporary files that a killed write
    left in the run folder (names '.NAME.XXXXXXXX.tmp[.ext]', ours only). Returns them (log it)."""
    folder = Path(folder)
    gone = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and _TMP.match(p.name):
                p.unlink()
                gone.append(p)
    return gone


def dumps_strict(obj, **kw) -> str:
    """JSON that is JSON: NaN/inf raise ValueError (allow_nan=False)."""
    return json.dumps(obj, allow_nan=False, **kw)


# ------------------------------------------------------------------------------ run folders
RUN_FILES = ("checkpoint.pth.tar", "model_best.pth.tar", "results.json")  # the files of a 3C run


def check_fresh_folder(folder, resume_hint: str, other_hint: str) -> None:
    """A fresh run may not write into a folder that already holds a run.
    resume_hint: how to continue it, e.g. '--resume logs/x/checkpoint.pth.tar';
    other_hint: how to start elsewhere, e.g. 'another --logs-dir'."""
    folder = Path(folder)
    held = [n for n in RUN_FILES if (folder / n).exists()]
    if held:
        raise RunError(f"{folder} already holds a run ({', '.join(held)}); continue it with {resume_hint}, "
                       f"or start a fresh run with {other_hint}")


# ------------------------------------------------------------------------------ resume
def resume_differences(saved: dict, now: dict, may_change) -> list[str]:
    """The settings of this command that differ from those the checkpoint was trained with,
    except run plumbing (may_change: paths, workers, threads, device, progress, print freq,
    the resume flag itself). Compared as resolved values (float 3.5e-4 == '3.5e-4' parsed)."""
    out = []
    for key in sorted(set(saved) | set(now)):
        if key in may_change:
            continue
        a, b = saved.get(key, "<unset>"), now.get(key, "<unset>")
        if a != b:
            out.append(f"{key} (checkpoint {a!r}, now {b!r})")
    return out


def check_resume(saved: dict, now: dict, may_change, flag_hint: str = "") -> None:
    diff = resume_differences(saved, now, may_change)
    if diff:
        raise RunError("--resume: this command's settings differ from the checkpoint's: " + "; ".join(diff)
                       + ". Drop or correct those flags to continue the run as it was trained, "
                         "or start a fresh run in another folder")


# ------------------------------------------------------------------------------ flags
def finite_float(text: str) -> float:
    """argparse type: a float that is finite ('inf', 'nan', '1e999' are refused at parse time)."""
    import argparse
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


# ------------------------------------------------------------------------------ safe loading
def safe_torch_load(path, allowed=()):
    """torch.load(weights_only=True). A file that needs code to load (a pickle with globals
    other than tensors/containers/numbers) is refused WITHOUT running anything:
    RunError('cannot load PATH safely: it holds Python objects that would run code when loaded
    (GLOBAL); only tensors, numbers, strings, lists and dicts are read'). `allowed`: extra globals
    an original's legacy checkpoint needs (e.g. numpy scalar reconstruction), by name, through
    torch.serialization.safe_globals(allowed) - never weights_only=False."""
    import pickle

    import torch
    path = Path(path)
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        m = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if m is None:  # no object to refuse: a damaged or foreign file
            r = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(\n\n|$)", str(exc), flags=re.S)
            reason = r.group(1) if r else str(exc).splitlines()[0]
            raise RunError(f"cannot read checkpoint {path} ({reason[:200]}); it may be "
                           "truncated or not a PyTorch checkpoint") from None
        what = m.group(1)
        raise RunError(f"cannot load {path} safely: it holds {what}, which would run code when loaded; "
                       "only tensors, numbers, strings, lists and dicts are read") from None
    except Exception as exc:  # noqa: BLE001 - truncated, not a checkpoint, ...
        raise RunError(f"cannot read checkpoint {path} ({str(exc).splitlines()[0][:200]}); it may be "
                       "truncated or not a PyTorch checkpoint") from None


# ------------------------------------------------------------------------------ main()'s last resort
def disk_full_line(exc: OSError) -> str | None:
    """main() catches OSError: for a full disk this is the one line to print (then exit 2);
    None for any other OSError (re-raise it). common_eval.results.atomic_write_text raises
    OSError(ENOSPC, 'no space left on device while writing PATH (N MB)', PATH)."""
    if exc.errno not in FULL:
        return None
    text = str(exc.strerror or "")
    if text.startswith("no space left on device while writing"):
        return f"error: {text}"
    return f"error: no space left on device while writing {exc.filename or 'a file'}"


def one_line_errors(body, user_errors: tuple = (), describe=str) -> int:
    """A script's main(): body()'s exit status, or, for a problem the user can fix (one of
    ``user_errors``, shown by ``describe``) or a full disk, one 'error: ...' line on stderr and
    exit status 2; any other exception keeps its traceback."""
    try:
        return body()
    except user_errors as exc:
        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
