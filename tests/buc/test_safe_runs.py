"""Safe runs (issue 17): no file runs code, a run folder is never overwritten, atomic writes with
the umask's mode and a clear full-disk line, the resume rule, finite flags, one `error:` line for
bad input, the one-identity warning, and a read-only data root."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import BUC, tiny_argv
from train import collapse_warning, main, parse_args, resolved_config

from buc import datasets, models
from buc.utils.runfiles import RunError, remove_stale_tmp
from buc.utils.serialization import load_checkpoint, save_checkpoint, write_json
from common_eval.synthetic import generate


class Evil:
    """Unpickling this runs a shell command (what a crafted checkpoint does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth.tar"
    torch.save({"model": {}, "args": {"dataset": "market1501"}, "x": Evil(marker)}, path)
    return path, marker


def run_py(*argv, cwd=BUC, env=None):
    return subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def tiny_checkpoint(path, **extra) -> Path:
    """A BUC model_best-style checkpoint of an untrained tiny model (what test.py evaluates)."""
    torch.manual_seed(0)
    model = models.create("resnet18", pretrained="none", embedding_size=64)
    args = {"dataset": "market1501", "arch": "resnet18", "fea": 64, "height": 64, "width": 32}
    save_checkpoint({"model": model.state_dict(), "step": 0, "args": args, **extra}, path)
    return path


# ------------------------------------------------------------------ no file runs code
@pytest.mark.parametrize("entry", ["test.py --checkpoint", "train.py --resume", "train.py --pretrained"])
def test_a_crafted_checkpoint_runs_nothing(tiny_root, tmp_path, entry):
    evil, marker = evil_checkpoint(tmp_path)
    logs = tmp_path / "logs"
    if entry == "test.py --checkpoint":
        p = run_py("examples/test.py", "--checkpoint", str(evil), "--data_dir", str(tiny_root))
    elif entry == "train.py --resume":
        p = run_py("examples/train.py", *tiny_argv(tiny_root, logs, "--resume", str(evil)))
    else:
        p = run_py("examples/train.py", *tiny_argv(tiny_root, logs, "--pretrained", str(evil)))
    assert p.returncode == 2, p.stderr[-2000:]
    line = one_error_line(p.stderr)
    assert f"cannot load {evil} safely" in line and "posix.system" in line
    assert not marker.exists()
    assert not (logs / "checkpoint.pth.tar").exists()


def legacy_checkpoint(path, state: dict, numpy1: bool = True) -> Path:
    """torch.save's legacy (non-zip) format, with numpy 1.x's module names when numpy1: what an
    Open-ReID / original BUC checkpoint of 2019 looks like to the unpickler."""
    torch.save(state, path, _use_new_zipfile_serialization=False)
    if numpy1:
        data = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        path.write_bytes(data)
    return path


def test_legacy_open_reid_checkpoint_with_numpy_scalars_loads_and_evaluates(tiny_root, tmp_path):
    torch.manual_seed(0)
    model = models.create("resnet18", pretrained="none", embedding_size=64)
    weights = {f"module.{k}": v for k, v in model.state_dict().items()}   # saved from DataParallel
    path = legacy_checkpoint(tmp_path / "legacy.pth.tar",
                             {"state_dict": weights, "epoch": 5, "best_top1": np.float64(0.4125),
                              "labels": np.arange(4)})
    assert b"numpy.core.multiarray\nscalar" in path.read_bytes()
    state = load_checkpoint(path)
    assert state["best_top1"] == 0.4125 and isinstance(state["best_top1"], float)
    assert torch.equal(state["labels"], torch.arange(4))
    p = run_py("examples/test.py", "--checkpoint", str(path), "-d", "market1501",
               "--data_dir", str(tiny_root), "-a", "resnet18", "-f", "64", "--height", "64", "--width", "32",
               "--no-progress",
               "--output", str(tmp_path / "m.json"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert 0 <= json.loads((tmp_path / "m.json").read_text())["common"]["mAP"] <= 100


def test_own_checkpoints_hold_no_pickled_objects(tmp_path):
    """RNG states, labels and metrics are stored as tensors and numbers: weights_only loads the
    file with no allowance at all."""
    from buc.utils import rng_state, set_rng_state
    from buc.utils.serialization import plain
    path = tmp_path / "c.pth.tar"
    state = {"rng": rng_state(), "labels": np.arange(5), "best": {"mAP": np.float64(1.5)}}
    save_checkpoint(plain(state), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(path)) == []
    raw = torch.load(path, weights_only=True)
    expected = np.random.rand(3)   # noqa: NPY002
    set_rng_state(raw["rng"])
    assert np.array_equal(np.random.rand(3), expected)   # noqa: NPY002


# ------------------------------------------------------------------ run folders
@pytest.mark.parametrize("held", ["results.json", "checkpoint.pth.tar"])
def test_a_fresh_run_never_overwrites_a_run(tiny_root, tmp_path, capsys, held):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / held).write_bytes(b'{"mAP": 52.4}\n')
    (logs / "log.txt").write_text("the first run's log\n")
    assert main(tiny_argv(tiny_root, logs)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{logs} already holds a run ({held})" in line
    assert f"--resume {logs / 'checkpoint.pth.tar'}" in line and "another --logs_dir" in line
    assert (logs / held).read_bytes() == b'{"mAP": 52.4}\n'
    assert (logs / "log.txt").read_text() == "the first run's log\n"
    assert sorted(p.name for p in logs.iterdir()) == sorted([held, "log.txt"])


def test_a_resume_from_elsewhere_refuses_a_folder_that_holds_a_run(tiny_root, tmp_path, capsys):
    """--resume A/checkpoint.pth.tar --logs_dir B would write its checkpoints over B's run."""
    source = tmp_path / "a" / "checkpoint.pth.tar"
    save_checkpoint({"labels": torch.arange(3)}, source)  # no settings: nothing to compare
    logs = tmp_path / "b"
    logs.mkdir()
    (logs / "results.json").write_bytes(b'{"mAP": 52.4}\n')
    assert main(tiny_argv(tiny_root, logs, "--resume", str(source))) == 2
    assert f"{logs} already holds a run (results.json)" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in logs.iterdir()) == ["results.json"]


# ------------------------------------------------------------------ writes
def test_writes_keep_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint({"a": torch.ones(2)}, tmp_path / "c.pth.tar")
        write_json({"a": 1}, tmp_path / "r.json")
        assert (tmp_path / "c.pth.tar").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o077)
        write_json({"a": 2}, tmp_path / "r.json")
        assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_json_is_strict(tmp_path):
    with pytest.raises(ValueError):
        write_json({"lr": float("inf")}, tmp_path / "x.json")
    assert not any(tmp_path.iterdir())


def test_stale_temporary_files_are_removed_at_the_start(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    stale = [logs / ".checkpoint.pth.tar.k2j4h5g6.tmp", logs / ".results.json.abcdefgh.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 100)
    (logs / "notes.tmp").write_text("mine")                      # not ours: kept
    assert main(tiny_argv(tmp_path / "no-data", logs)) == 2       # stops at the missing dataset
    assert not any(p.exists() for p in stale) and (logs / "notes.tmp").exists()
    log = (logs / "log.txt").read_text()
    assert ".checkpoint.pth.tar.k2j4h5g6.tmp" in log and "interrupted write" in log
    assert remove_stale_tmp(logs) == []


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(small_tmpfs):
    path = small_tmpfs / "checkpoint.pth.tar"
    first = {"model": {"w": torch.arange(1000, dtype=torch.float32)}, "step": 1}
    save_checkpoint(first, path)
    with pytest.raises(RunError) as exc:
        save_checkpoint({"model": {"w": torch.zeros(200_000)}, "step": 2}, path)   # 800 kB > 256 kB
    assert str(exc.value).startswith(f"no space left on device while writing {path} (")
    assert str(exc.value).endswith(" MB)")
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["checkpoint.pth.tar"]   # no temporary left
    back = load_checkpoint(path)
    assert back["step"] == 1 and torch.equal(back["model"]["w"], first["model"]["w"])
    with pytest.raises(RunError, match="no space left on device while writing .*results.json"):
        write_json({"x": "y" * 400_000}, small_tmpfs / "results.json")


# ------------------------------------------------------------------ resume rule, finite flags
def test_resume_refuses_other_settings_and_allows_plumbing(tiny_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    args = parse_args(tiny_argv(tiny_root, logs))
    save_checkpoint({"args": vars(args), "labels": torch.arange(3)}, logs / "checkpoint.pth.tar")
    before = (logs / "checkpoint.pth.tar").read_bytes()
    assert main(tiny_argv(tiny_root, logs, "--resume", "--lr", "1e12", "--seed", "3")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "lr (checkpoint 0.1, now 1000000000000.0)" in line and "seed (checkpoint 0, now 3)" in line
    assert (logs / "checkpoint.pth.tar").read_bytes() == before and not (logs / "log.txt").exists()
    # plumbing may differ; aliases and defaults left to the dataset resolve to the same values
    now = parse_args(tiny_argv(tiny_root, tmp_path / "elsewhere", "-d", "market", "--workers", "3",
                               "--threads", "1", "--device", "cpu", "--progress", "--bn-slices", "1"))
    from train import PLUMBING

    from buc.utils.runfiles import resume_differences
    assert resume_differences(resolved_config(vars(args)), resolved_config(vars(now)), PLUMBING) == []


def test_resume_without_a_checkpoint_is_one_line(tiny_root, tmp_path, capsys):
    assert main(tiny_argv(tiny_root, tmp_path / "logs", "--resume")) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"checkpoint {tmp_path / 'logs' / 'checkpoint.pth.tar'} does not exist" in line


@pytest.mark.parametrize("flag", [["--lr", "inf"], ["--size_penalty", "nan"], ["-mp", "1e999"]])
def test_non_finite_flags_are_refused_at_parse_time(flag, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["-d", "market1501", *flag])
    assert exc.value.code == 2 and "not a finite number" in capsys.readouterr().err


def test_non_finite_preset_values_are_refused(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("lr: .inf\n")
    with pytest.raises(SystemExit) as exc:
        parse_args(["-d", "market1501", "--config", str(tmp_path / "p.yaml")])
    assert exc.value.code == 2 and "lr: inf: not a finite number" in capsys.readouterr().err


# ------------------------------------------------------------------ bad input
def test_test_py_with_a_missing_dataset_is_one_line(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "model_best.pth.tar")
    p = run_py("examples/test.py", "--checkpoint", str(ckpt), "--data_dir", str(tmp_path / "nothing"))
    assert p.returncode == 2
    assert "dataset 'market1501' not found" in one_error_line(p.stderr)


def test_test_py_with_a_missing_checkpoint_is_one_line(tmp_path):
    p = run_py("examples/test.py", "--checkpoint", str(tmp_path / "nope.pth.tar"))
    assert p.returncode == 2
    assert "does not exist" in one_error_line(p.stderr)


def test_collapse_warning_lines():
    assert collapse_warning(5, 3, 10) is None
    assert collapse_warning(1, 3, 10).startswith("WARNING: the pseudo-labels of this step are one cluster")
    assert collapse_warning(7, 1, 10).startswith("WARNING: the training set holds one identity")


@pytest.mark.slow
def test_one_identity_training_set_warns_at_every_step(tmp_path):
    root = tmp_path / "data"
    generate("market1501", root, seed=3, domain="a", ids=6, test_ids=6)
    train = root / "Market-1501-v15.09.15" / "bounding_box_train"
    for f in sorted(train.iterdir()):                 # every training image becomes identity 1500
        f.rename(train / ("1500" + f.name[4:]))
    assert main(tiny_argv(root, tmp_path / "logs", "--steps", "2", "--initial_steps", "1")) == 0
    log = (tmp_path / "logs" / "log.txt").read_text()
    assert log.count("WARNING: the training set holds one identity") == 2


# ------------------------------------------------------------------ read-only data root
@pytest.fixture
def read_only_root(tiny_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    import shutil
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", src / "Market-1501-v15.09.15")
    shutil.copy(tiny_root / "Market-1501-v15.09.15.synthetic.json", src)
    ro = tmp_path / "ro"
    ro.mkdir()
    p = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot bind-mount here (needs root): {p.stderr.strip()}")
    try:
        p = subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True, text=True)
        if p.returncode:
            pytest.skip(f"cannot remount read-only here: {p.stderr.strip()}")
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def listing(root: Path):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_read_only_data_root_test_py_and_cache_reuse(read_only_root, tmp_path):
    before = listing(read_only_root)
    ds = datasets.create("market1501", read_only_root, verbose=False)
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "buc" / "converted"
    assert ds.root.parent == cache and ds.root.name.startswith("market1501-")
    stamp = (ds.root / "meta.json").stat().st_mtime_ns
    ckpt = tiny_checkpoint(tmp_path / "model_best.pth.tar")
    p = run_py("examples/test.py", "--checkpoint", str(ckpt), "--data_dir", str(read_only_root),
               "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (ds.root / "meta.json").stat().st_mtime_ns == stamp       # the same copy, reused
    assert listing(read_only_root) == before                            # nothing written under the root


def test_converted_copy_follows_the_listing(tiny_root, tmp_path):
    import shutil
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", tmp_path / "Market-1501-v15.09.15")
    shutil.copy(tiny_root / "Market-1501-v15.09.15.synthetic.json", tmp_path)
    ds = datasets.create("market1501", tmp_path, verbose=False)
    assert not (tmp_path / "buc-converted").exists()
    stamp = (ds.root / "meta.json").stat().st_mtime_ns
    datasets.create("market1501", tmp_path, verbose=False)
    assert (ds.root / "meta.json").stat().st_mtime_ns == stamp
    query = tmp_path / "Market-1501-v15.09.15" / "query"
    sorted(query.iterdir())[0].unlink()                                   # the source changed
    again = datasets.create("market1501", tmp_path, verbose=False)
    assert again.root == ds.root and (ds.root / "meta.json").stat().st_mtime_ns != stamp
    assert len(again.query) == len(ds.query) - 1


@pytest.mark.slow
def test_read_only_data_root_training(read_only_root, tmp_path):
    before = listing(read_only_root)
    assert main(tiny_argv(read_only_root, tmp_path / "logs", "--stop_after_epochs", "1")) == 0
    assert listing(read_only_root) == before


# ------------------------------------------------------------------ --print-config
PAPER = {  # README "Commands": run.sh's flags; the rest the original's constants
    "market1501": dict(later_steps=2, frames_per_video=1, bn_slices=1, fixed_layer="no", eval_batch_size=64),
    "duke": dict(later_steps=2, frames_per_video=1, bn_slices=1, fixed_layer="no", eval_batch_size=64),
    "mars": dict(later_steps=5, frames_per_video=16, bn_slices=2, fixed_layer="yes", eval_batch_size=1),
    "DukeMTMC-VideoReID": dict(later_steps=5, frames_per_video=16, bn_slices=2, fixed_layer="yes",
                               eval_batch_size=1),
}


@pytest.mark.parametrize("dataset", sorted(PAPER))
def test_print_config_pins_the_paper_commands(dataset, tmp_path, capsys):
    logs, data = tmp_path / "logs", tmp_path / "data"
    argv = ["-d", dataset, "--data_dir", str(data), "--logs_dir", str(logs), "-b", "16",
            "--size_penalty", "0.003", "-mp", "0.05", "--print-config"]
    assert main(argv) == 0
    c = yaml.safe_load(capsys.readouterr().out)
    assert c["dataset"] == dataset and c["batch_size"] == 16
    assert (c["size_penalty"], c["merge_percent"], c["steps"]) == (0.003, 0.05, 19)
    assert (c["initial_steps"], c["lr"], c["later_lr"], c["lr_step_size"]) == (20, 0.1, 0.01, 16)
    assert (c["arch"], c["fea"], c["height"], c["width"], c["t"], c["dropout"]) == \
        ("avg_pool", 2048, 256, 128, 10.0, 0.5)
    assert (c["pretrained"], c["max_frames"], c["seed"], c["amp"]) == ("imagenet", 900, 0, "off")
    assert {k: c[k] for k in PAPER[dataset]} == PAPER[dataset]
    assert not logs.exists() and not data.exists()


def test_print_config_through_the_adapter_with_the_smoke_preset(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    p = subprocess.run([str(BUC / "reproduce.sh"), "dukevideo", "--data-root", str(tmp_path / "d"),
                        "--logs-dir", str(tmp_path / "l"), "--smoke", "--", "--print-config"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    c = yaml.safe_load(p.stdout)
    assert (c["dataset"], c["arch"], c["bn_slices"], c["merge_percent"], c["later_steps"]) == \
        ("DukeMTMC-VideoReID", "resnet18", 4, 0.1, 5)
    assert not (tmp_path / "l").exists()
