"""Safe runs (issue 17): no file runs code, a run folder is never overwritten, atomic writes with
the umask's mode and one line on a full disk, the resume rule, and bad input as one error line."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CDSM_DIR, tiny_args

from cdsm import models
from cdsm.utils.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from cdsm.utils.runfiles import RunError, remove_stale_tmp


class Evil:
    """Unpickling this would run a shell command (create the file ``marker``)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth.tar"
    torch.save({"x": Evil(marker), "state_dict": {}}, path)
    return path, marker


def run_cli(script, args, timeout=300):
    return subprocess.run([sys.executable, f"examples/{script}.py", *map(str, args)], cwd=CDSM_DIR,
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(p) -> str:
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


# ---------------------------------------------------------------------------------- 1. no code
@pytest.mark.parametrize("entry", ["train --resume", "train --resume-ema", "train --pretrained", "test"])
def test_a_crafted_pickle_runs_nothing(tiny_root, tmp_path, entry):
    evil, marker = crafted(tmp_path)
    if entry == "test":
        p = run_cli("test", ["-d", "market1501", "--data-dir", tiny_root, "--resume", evil, "-j", "0"])
    else:
        flag = entry.split()[1]
        p = run_cli("train", tiny_args(tiny_root, tmp_path / "logs", flag, evil))
    line = one_error_line(p)
    assert line == (f"error: cannot load {evil} safely: it holds posix.system, which would run code when "
                    "loaded; only tensors, numbers, strings, lists and dicts are read")
    assert not marker.exists()


def test_original_checkpoints_with_numpy_scalars_still_load(tmp_path):
    """The original CDSM saved 'best_mAP' as a numpy float64 (mean_ap's np.mean): allowed by name
    (failed before: weights_only=True refused numpy's scalar reconstructor)."""
    import numpy as np
    path = tmp_path / "model_best.pth.tar"
    original = {"state_dict": {"module.w": torch.ones(2)}, "epoch": np.int64(7), "best_mAP": np.float64(0.52)}
    torch.save(original, path)
    ckpt = load_checkpoint(path)
    assert ckpt["best_mAP"] == 0.52 and ckpt["epoch"] == 7


# ------------------------------------------------------------------------- 2. the run folder
def test_a_fresh_run_refuses_a_folder_that_holds_a_run(tiny_root, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "results.json").write_text('{"method": "cdsm", "common": {"mAP": 52.4}}\n')
    before = (logs / "results.json").read_bytes()
    p = run_cli("train", tiny_args(tiny_root, logs))
    line = one_error_line(p)
    assert line == (f"error: {logs} already holds a run (results.json); continue it with --resume "
                    f"{logs / 'checkpoint.pth.tar'}, or start a fresh run with another --logs-dir")
    assert (logs / "results.json").read_bytes() == before
    assert sorted(x.name for x in logs.iterdir()) == ["results.json"]   # no log.txt, no config.yaml


def test_a_resume_from_elsewhere_refuses_a_folder_that_holds_a_run(tiny_root, tmp_path):
    """--resume A/checkpoint.pth.tar --logs-dir B would write its checkpoints over B's run."""
    other = tmp_path / "a" / "checkpoint.pth.tar"
    other.parent.mkdir()
    other.write_bytes(b"not read: the folder is refused first")
    logs = tmp_path / "b"
    logs.mkdir()
    (logs / "results.json").write_text('{"method": "cdsm"}\n')
    p = run_cli("train", tiny_args(tiny_root, logs, "--resume", str(other)))
    assert one_error_line(p).startswith(f"error: {logs} already holds a run (results.json)")
    assert sorted(x.name for x in logs.iterdir()) == ["results.json"]


# --------------------------------------------------------------------------------- 3. writes
def test_writes_keep_the_umask_mode(tmp_path, train_script):
    old = os.umask(0o022)
    try:
        save_checkpoint({"w": torch.ones(3)}, tmp_path / "checkpoint.pth.tar")
        args = train_script.parse_args(tiny_args(tmp_path, tmp_path))
        train_script.write_config(tmp_path, args)
    finally:
        os.umask(old)
    for name in ("checkpoint.pth.tar", "config.yaml"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name   # was 0o600 (mkstemp)
    assert not list(tmp_path.glob(".*.tmp"))


def test_stale_temporary_files_are_removed_at_the_start(train_script, tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    stale = logs / ".checkpoint.pth.tar.k3j_9xq2.tmp"
    stale.write_bytes(b"\0" * 1000)
    other = logs / ".notes.tmp"
    other.write_text("not ours")
    rc = train_script.main(tiny_args(tmp_path / "no-data", logs))   # stops at the missing dataset
    assert rc == 2
    assert not stale.exists() and other.exists()
    assert "removed .checkpoint.pth.tar.k3j_9xq2.tmp" in (logs / "log.txt").read_text()
    assert remove_stale_tmp(logs) == []


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True,
                       text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmpfs):
    """Failed before: torch.save raised RuntimeError('[enforce fail at inline_container.cc:...]
    . unexpected pos') and the run ended in a traceback."""
    path = tmpfs / "checkpoint.pth.tar"
    first = {"epoch": 1, "w": torch.arange(25_000, dtype=torch.float32)}         # 100 kB
    save_checkpoint(first, path)
    with pytest.raises(RunError) as err:
        save_checkpoint({"epoch": 2, "w": torch.zeros(250_000)}, path)            # 1 MB > what is left
    assert str(err.value).startswith(f"no space left on device while writing {path} (")
    assert str(err.value).endswith(" MB)")
    again = load_checkpoint(path)
    assert again["epoch"] == 1 and torch.equal(again["w"], first["w"])
    assert sorted(x.name for x in tmpfs.iterdir()) == ["checkpoint.pth.tar"]     # no temporary file left


# ---------------------------------------------------------------------------------- 4. resume
@pytest.fixture
def saved_run(train_script, tiny_root, tmp_path):
    """A checkpoint of our format as the tiny run writes it (only its 'args' are read before the
    check)."""
    logs = tmp_path / "run"
    args = train_script.parse_args(tiny_args(tiny_root, logs))
    logs.mkdir()
    save_checkpoint({"format": FORMAT, "epoch": 1, "args": train_script.config_of(args)},
                    logs / "checkpoint.pth.tar")
    (logs / "results.json").write_text("{}\n")
    return logs


def test_resume_refuses_other_settings_and_lists_them(saved_run, tiny_root, train_script, capsys):
    """Failed before: the run went on at the checkpoint's lr and recorded --lr 1e12 in
    results.json and config.yaml."""
    ckpt = saved_run / "checkpoint.pth.tar"
    before = {p.name: p.read_bytes() for p in saved_run.iterdir()}
    args = tiny_args(tiny_root, saved_run, "--resume", ckpt, "--lr", "1e12", "--epochs", "5", "-j", "3",
                     "--num-threads", "1")
    rc = train_script.main([str(a) for a in args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == ("error: --resume: this command's settings differ from the checkpoint's: "
                           "epochs (checkpoint 2, now 5); lr (checkpoint 0.00035, now 1000000000000.0). "
                           "Drop or correct those flags to continue the run as it was trained, or start a "
                           "fresh run in another folder")   # workers and threads are run plumbing: not listed
    after = {p.name: p.read_bytes() for p in saved_run.iterdir() if p.name != "log.txt"}
    assert after == before   # no config.yaml, nothing written over


@pytest.mark.parametrize("value", ["inf", "nan", "1e999"])
def test_non_finite_flags_are_refused_at_parse_time(train_script, capsys, value):
    with pytest.raises(SystemExit) as e:
        train_script.parse_args(["--lr", value])
    assert e.value.code == 2 and "argument --lr:" in capsys.readouterr().err


def test_non_finite_preset_values_are_refused(train_script, tmp_path, capsys):
    preset = tmp_path / "p.yml"
    preset.write_text("momentum: .inf\n")
    with pytest.raises(SystemExit) as e:
        train_script.parse_args(["--config", str(preset)])
    assert e.value.code == 2 and "argument --momentum: inf is not a finite number" in capsys.readouterr().err


# ------------------------------------------------------------------------------- 5. bad input
def test_a_pid_that_is_not_a_number_is_one_line(tiny_root, tmp_path):
    """Failed before: int('00-8') ValueError traceback, exit 1."""
    data = tmp_path / "data"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", data / "Market-1501-v15.09.15")
    bad = data / "Market-1501-v15.09.15" / "bounding_box_train" / "00-8_c1s1_000151_01.jpg"
    shutil.copy(next((data / "Market-1501-v15.09.15" / "bounding_box_train").glob("*.jpg")), bad)
    line = one_error_line(run_cli("train", tiny_args(data, tmp_path / "logs")))
    assert line.startswith(f"error: {bad.resolve()}: file name does not follow the naming rule")


@pytest.fixture
def no_match_root(tiny_root, tmp_path):
    """The tiny set with every gallery pid moved by 5000: no query id is in the gallery."""
    data = tmp_path / "nomatch"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", data / "Market-1501-v15.09.15")
    gallery = data / "Market-1501-v15.09.15" / "bounding_box_test"
    for f in gallery.glob("*.jpg"):
        pid, rest = f.name.split("_", 1)
        if pid not in ("-1", "0000"):
            f.rename(gallery / f"{int(pid) + 5000:04d}_{rest}")
    return data


NO_VALID_QUERY = ("error: cannot evaluate on market1501: no valid query: no query has a true match "
                  "(same pid, other camera) in the gallery; check that query and gallery pids and cameras "
                  "are aligned")


def test_query_ids_absent_from_the_gallery_are_one_line(no_match_root, tmp_path):
    """Failed before: ValueError traceback, exit 1 (train.py's evaluation before training)."""
    p = run_cli("train", tiny_args(no_match_root, tmp_path / "logs"))
    assert one_error_line(p) == NO_VALID_QUERY


def test_test_script_query_ids_absent_and_aliases(no_match_root, tmp_path):
    model = models.create("resnet18", pretrained="none")
    ckpt = tmp_path / "model_best.pth.tar"
    save_checkpoint({"format": FORMAT, "teacher": model.state_dict(),
                     "args": {"arch": "resnet18", "height": 32, "width": 16}}, ckpt)
    p = run_cli("test", ["-d", "market", "--data-root", no_match_root, "--checkpoint", ckpt, "-j", "0"])
    assert one_error_line(p) == NO_VALID_QUERY


@pytest.mark.slow
def test_one_cluster_warns_every_epoch(train_script, tiny_root, tmp_path, capsys):
    """A training set of one person: the pseudo-labels are one cluster (loss 0) in every epoch.
    Failed before: the run trained at loss 0 without a word."""
    data = tmp_path / "one"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", data / "Market-1501-v15.09.15")
    train = data / "Market-1501-v15.09.15" / "bounding_box_train"
    keep = sorted(train.glob("*.jpg"))[0].name[:4]
    for f in train.glob("*.jpg"):
        if not f.name.startswith(keep):
            f.unlink()
    logs = tmp_path / "logs"
    rc = train_script.main(tiny_args(data, logs, "--eps", "0.9", "--k1", "5", "--k2", "1", "--iters", "1"))
    assert rc == 0, capsys.readouterr().err
    log = (logs / "log.txt").read_text()
    for epoch in (0, 1):
        assert f"WARNING: epoch {epoch}: the pseudo-labels collapsed to one cluster" in log
    assert log.count("collapsed to one cluster") == 2
    record = json.loads((logs / "results.json").read_text())
    assert [h["clusters"] for h in record["history"]] == [1, 1] and record["history"][0]["loss"] == 0


# ------------------------------------------------------------- --print-config and the aliases
PAPER = {  # cdsm/README.md's paper commands: what a run of each will use
    "market": dict(dataset="market1501", k1=25, k2=6, eps=0.45, eps_gap=0.02, min_samples=4,
                   memorybank="CMhybrid_v5", mem_instances=4, momentum=0.05, hard_weight=0.5, epochs=50,
                   batch_size=128, num_instances=8, iters=400, lr=0.00035, temp=0.05, pooling_type="gem",
                   arch="resnet50", pretrained="imagenet", bn_slices=4, height=256, width=128, scale="paper"),
    "duke": dict(dataset="dukemtmcreid", k1=30, k2=6, eps=0.6, eps_gap=0.02, min_samples=4,
                 memorybank="CMhybrid_v5", mem_instances=4, momentum=0.05, hard_weight=0.5, epochs=50,
                 batch_size=256, num_instances=8, iters=400, lr=0.00035, temp=0.05, pooling_type="gem",
                 arch="resnet50", pretrained="imagenet", bn_slices=4, height=256, width=128, scale="paper"),
}
PAPER["msmt17"] = dict(PAPER["duke"], dataset="msmt17")
SMOKE = dict(PAPER["market"], k1=15, k2=4, eps=0.4, min_samples=3, epochs=8, batch_size=64, num_instances=4,
             iters=30, arch="resnet18", pretrained="none", bn_slices=1, height=64, width=32, scale="smoke")
README_COMMANDS = {
    "market": "-b 128 -a resnet50 -d market1501 --k1 25 --iters 400 --eps 0.45 --momentum 0.05 "
              "--num-instances 8 "
              "--mem-instances 4 --hard-weight 0.5 --pooling-type gem --memorybank CMhybird_v5 --epochs 50",
    "duke": "-b 256 -a resnet50 -d dukemtmcreid --k1 30 --iters 400 --eps 0.6 --momentum 0.05 "
            "--num-instances 8 "
            "--mem-instances 4 --hard-weight 0.5 --pooling-type gem --memorybank CMhybird_v5 --epochs 50",
    "msmt17": "-b 256 -a resnet50 -d msmt17 --k1 30 --iters 400 --eps 0.6 --momentum 0.05 --num-instances 8 "
              "--mem-instances 4 --hard-weight 0.5 --pooling-type gem --memorybank CMhybird_v5 --epochs 50",
}


def printed_config(train_script, capsys, tmp_path, *args):
    data, logs = tmp_path / "DATA", tmp_path / "logs"
    rc = train_script.main([*args, "--data-dir", str(data), "--logs-dir", str(logs), "--print-config"])
    out = capsys.readouterr().out
    assert rc == 0
    assert not logs.exists() and not data.exists()   # nothing touched
    return yaml.safe_load(out)


@pytest.mark.parametrize("target", sorted(PAPER))
def test_print_config_pins_the_paper_commands(train_script, capsys, tmp_path, monkeypatch, target):
    monkeypatch.chdir(CDSM_DIR)
    for args in (README_COMMANDS[target].split(), ["--config", f"configs/{target}.yml"]):
        got = printed_config(train_script, capsys, tmp_path, *args)
        assert {k: got[k] for k in PAPER[target]} == PAPER[target], args


def test_print_config_of_the_smoke_preset_and_the_adapter(train_script, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(CDSM_DIR)
    got = printed_config(train_script, capsys, tmp_path, "--config", "configs/market.yml", "--config",
                         "configs/smoke.yml")
    assert {k: got[k] for k in SMOKE} == SMOKE
    # ./reproduce.sh cdsm market --smoke --print-config: the adapter, a real process
    adapter = [str(CDSM_DIR / "reproduce.sh"), "market", "--smoke", "--data-root", str(tmp_path / "d"),
               "--logs-dir", str(tmp_path / "l"), "--print-config"]
    p = subprocess.run(adapter, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, CDSM_PYTHON=sys.executable))
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(p.stdout) == dict(got, data_dir=str(tmp_path / "d"), logs_dir=str(tmp_path / "l"))
    assert not (tmp_path / "l").exists()


def test_the_wrappers_vocabulary_beside_the_original_flags(train_script, test_script):
    a = vars(train_script.parse_args(["-d", "market", "--data-root", "/x", "--logs-dir", "/y"]))
    b = vars(train_script.parse_args(["-d", "market1501", "--data-dir", "/x", "--logs-dir", "/y"]))
    assert a == b and a["dataset"] == "market1501" and a["data_dir"] == "/x"
    assert train_script.parse_args(["--dataset", "duke"]).dataset == "dukemtmcreid"
    t = test_script.build_parser().parse_args(["-d", "duke", "--data-root", "/x", "--checkpoint",
                                               "m.pth.tar"])
    assert (t.dataset, t.data_dir, t.resume) == ("dukemtmcreid", "/x", "m.pth.tar")
    assert test_script.build_parser().parse_args(["--resume", "m.pth.tar"]).resume == "m.pth.tar"


def test_datasets_of_other_methods_are_refused_by_name(train_script, capsys):
    with pytest.raises(SystemExit) as e:
        train_script.parse_args(["-d", "mars"])
    assert e.value.code == 2 and "CDSM does not report mars" in capsys.readouterr().err
