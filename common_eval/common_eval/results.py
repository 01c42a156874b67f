"""results.json: the one record every method writes, so that all tables are comparable.

    {"method": "cdsm", "variant": null, "source": null, "target": "market", "scale": "smoke",
     "common":  {"ap": "stepwise", "mAP": .., "rank1": .., "rank5": .., "rank10": .., "mINP": ..},
     "native":  {"ap": "<the original's flavour>", ...},
     "initial": {... common-flavour metrics of the starting model, before any adaptation ...},
     "selection": "best-on-test" | "last", "last": {... common-flavour metrics of the last epoch},
     "epochs": .., "wall_seconds": .., "command": "..", "config": {..}, "git_commit": ".."}

Metrics are percentages (``RankResult.metrics()``). ``common`` and ``native`` describe the model
the original would report (the papers select the best epoch on the test set where their code
does; ``selection`` says which), ``last`` the model after the last epoch.
"""
from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path

REQUIRED = ("method", "target", "scale", "common", "native", "initial", "epochs", "wall_seconds",
            "command", "config")
METRIC_KEYS = ("ap", "mAP", "rank1", "rank5", "rank10", "mINP")
SCALES = ("paper", "smoke", "rehearsal")   # rehearsal: ./reproduce.sh rehearse (cost, not accuracy)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def atomic_write_text(path, text: str) -> Path:
    """Writes a file through a temporary file in the same folder and a rename.

    The file gets the umask's mode (0644 under umask 022), not mkstemp's 0600, so that
    colleagues can read a shared run. A failed write removes its temporary file and leaves the
    previous file as it was; a full disk raises ``OSError(ENOSPC, "no space left on device while
    writing PATH (N MB)", PATH)``, which the methods print as one ``error:`` line.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise OSError(errno.ENOSPC, f"no space left on device while writing {path} "
                                        f"({len(data) / 2**20:.1f} MB)", str(path)) from None
        raise
    return path


def git_commit(start: str | os.PathLike | None = None) -> str | None:
    """The commit of the checkout holding `start` (default: this file), or None outside git."""
    here = Path(start or __file__).resolve()
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here if here.is_dir() else here.parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _check_metrics(name: str, m) -> None:
    if not isinstance(m, dict) or any(k not in m for k in METRIC_KEYS):
        raise ValueError(f"results.json field {name!r} must be a metrics dict with keys "
                         f"{', '.join(METRIC_KEYS)} (RankResult.metrics()), got {m!r}")


def make_record(*, method: str, target: str, scale: str, common: dict, native: dict,
                initial: dict, epochs: int, wall_seconds: float, command: str, config: dict,
                source: str | None = None, variant: str | None = None,
                selection: str = "last", last: dict | None = None, **extra) -> dict:
    """Builds and checks a results record; extra keys (e.g. per-epoch history) are kept."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    for name, m in (("common", common), ("native", native), ("initial", initial)):
        _check_metrics(name, m)
    if last is not None:
        _check_metrics("last", last)
    record = {"method": method, "variant": variant, "source": source, "target": target,
              "scale": scale, "common": common, "native": native, "initial": initial,
              "selection": selection, "last": last if last is not None else common,
              "epochs": epochs, "wall_seconds": round(float(wall_seconds), 1),
              "command": command, "config": config, "git_commit": git_commit()}
    record.update(extra)
    return record


def write_results(log_dir, **fields) -> Path:
    """Writes log_dir/results.json atomically; see make_record for the fields. Strict JSON: a
    NaN or infinite value anywhere in the record raises ValueError (JSON has no such numbers)."""
    record = make_record(**fields)
    return atomic_write_text(Path(log_dir) / "results.json",
                             json.dumps(record, indent=2, sort_keys=False, default=str,
                                        allow_nan=False) + "\n")


def load_results(root) -> list[dict]:
    """Every results.json below root (sorted by path), each with its path under "_path"."""
    records = []
    for path in sorted(Path(root).rglob("results.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a readable results.json ({exc})") from exc
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise ValueError(f"{path}: results.json lacks {', '.join(missing)}")
        rec["_path"] = str(path)
        records.append(rec)
    return records
