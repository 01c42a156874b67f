"""The run-safety rules exist in five copies (each subproject is self-contained): they must
behave identically. Each method's own ``runfiles`` module is exercised in its own process (PUL
never shares a process with torch) on the same inputs, and every answer is compared across the
five: the messages a user reads, the file modes, which temporary files are cleaned, what a
crafted checkpoint does (nothing) and what a damaged one says."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PY = ROOT / ".venv" / "bin" / "python"
MODULES = {"pul": "pul.runfiles", "buc": "buc.utils.runfiles", "cdsm": "cdsm.utils.runfiles",
           "ccc": "ccc.utils.runfiles", "auxusl": "auxusl.utils.runfiles"}

PROBE = r'''
import errno, importlib, json, os, sys
from pathlib import Path
rf = importlib.import_module(sys.argv[1])
work = Path(sys.argv[2]); work.mkdir()
out = {}

def said(fn, *a):
    try:
        fn(*a)
    except Exception as exc:  # the message a user reads
        return str(exc).replace(str(work), "WORK")
    return None

held = work / "held"; held.mkdir(); (held / "results.json").write_text("{}")
out["fresh"] = said(rf.check_fresh_folder, held, "--resume X", "another --logs-dir")
out["fresh_empty"] = said(rf.check_fresh_folder, work / "empty", "--resume X", "another --logs-dir")
out["resume"] = said(rf.check_resume, {"lr": 3.5e-4, "workers": 4, "epochs": 2},
                     {"lr": 1e12, "workers": 1, "epochs": 5}, {"workers"})
out["resume_plumbing"] = said(rf.check_resume, {"lr": 1.0, "workers": 4}, {"lr": 1.0, "workers": 1},
                              {"workers"})
out["finite"] = [said(rf.finite_float, v) for v in ("inf", "nan", "1e999", "x")]
out["finite_ok"] = rf.finite_float("3.5e-4")
os.umask(0o022)
p = rf.atomic_write(work / "a.bin", lambda f: f.write(b"x"))
out["mode"] = oct(os.stat(p).st_mode & 0o777)
for name in (".checkpoint.pth.tar.ab12cd34.tmp", ".results.json.x_Y9zz10.tmp", ".notes.tmp", "keep.tmp"):
    (work / name).write_text("")
out["stale_removed"] = sorted(q.name for q in rf.remove_stale_tmp(work))
out["disk_full"] = [rf.disk_full_line(OSError(errno.ENOSPC, "No space left on device", "/x/log.txt")),
                    rf.disk_full_line(OSError(errno.ENOSPC,
                                              "no space left on device while writing /x/c (3.0 MB)")),
                    rf.disk_full_line(OSError(errno.EACCES, "Permission denied", "/x"))]
out["json"] = said(rf.dumps_strict, {"lr": float("inf")})
import contextlib, io
def guarded(exc):
    def body():
        if exc is None:
            return 0
        raise exc
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            status = rf.one_line_errors(body, (KeyError, ValueError), describe=lambda e: f"bad {e}")
        except Exception as other:
            return ["raised", type(other).__name__]
    return [status, err.getvalue()]
out["guard"] = [guarded(None), guarded(ValueError("x")),
                guarded(OSError(errno.ENOSPC, "No space left", "/x/f")),
                guarded(OSError(errno.EACCES, "Permission denied", "/x")), guarded(RuntimeError("bug"))]
if hasattr(rf, "safe_torch_load"):
    import torch

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {work / 'MARKER'}",))
    torch.save({"x": Evil()}, work / "evil.pth")
    (work / "damaged.pth").write_bytes(b"\x80\x04 not a checkpoint")
    torch.save({"w": torch.ones(2)}, work / "plain.pth")
    out["evil"] = said(rf.safe_torch_load, work / "evil.pth")
    out["marker"] = (work / "MARKER").exists()
    out["damaged"] = said(rf.safe_torch_load, work / "damaged.pth")
    out["missing"] = said(rf.safe_torch_load, work / "nowhere.pth")
    out["plain"] = rf.safe_torch_load(work / "plain.pth")["w"].tolist()
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    got = {}
    for method, module in MODULES.items():
        work = tmp_path_factory.mktemp(method) / "w"
        done = subprocess.run([str(PY), "-W", "ignore", "-c", PROBE, module, str(work)], capture_output=True,
                              text=True, timeout=300, cwd=ROOT / method)
        assert done.returncode == 0, f"{method}: {done.stderr[-2000:]}"
        got[method] = json.loads(done.stdout.strip().splitlines()[-1])
    return got


def test_the_five_copies_answer_alike(answers):
    ref = answers["cdsm"]
    for method, got in answers.items():
        for key in ref:
            if key in got:
                assert got[key] == ref[key], f"{method} differs from cdsm in {key}: {got[key]!r}"


def test_the_answers_are_the_documented_ones(answers):
    a = answers["cdsm"]
    assert a["fresh"] == ("WORK/held already holds a run (results.json); continue it with --resume X, "
                          "or start a fresh run with another --logs-dir")
    assert a["fresh_empty"] is None and a["resume_plumbing"] is None
    assert a["resume"].startswith("--resume: this command's settings differ from the checkpoint's: "
                                  "epochs (checkpoint 2, now 5); "
                                  "lr (checkpoint 0.00035, now 1000000000000.0).")
    assert "workers" not in a["resume"]
    assert all("not a finite number" in m or "invalid float" in m for m in a["finite"])
    assert a["finite_ok"] == 3.5e-4
    assert a["mode"] == "0o644"
    assert a["stale_removed"] == [".checkpoint.pth.tar.ab12cd34.tmp", ".results.json.x_Y9zz10.tmp"]
    assert a["disk_full"] == ["error: no space left on device while writing /x/log.txt",
                              "error: no space left on device while writing /x/c (3.0 MB)", None]
    assert a["json"] and "JSON" in a["json"]
    assert a["guard"] == [[0, ""], [2, "error: bad x\n"],
                          [2, "error: no space left on device while writing /x/f\n"],
                          ["raised", "PermissionError"], ["raised", "RuntimeError"]]
    assert a["evil"] == ("cannot load WORK/evil.pth safely: it holds posix.system, which would run code "
                         "when loaded; only tensors, numbers, strings, lists and dicts are read")
    assert a["marker"] is False
    assert a["damaged"].startswith("cannot read checkpoint WORK/damaged.pth (")
    assert a["damaged"].endswith("); it may be truncated or not a PyTorch checkpoint")
    assert a["missing"] == "checkpoint WORK/nowhere.pth does not exist"
    assert a["plain"] == [1.0, 1.0]
    assert set(answers) == set(MODULES) and all("evil" in answers[m] for m in ("buc", "ccc", "auxusl"))
