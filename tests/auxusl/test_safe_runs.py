"""Issue 17 for AuxUSL: no file runs code, a run folder is never overwritten, atomic writes
(umask mode, stale temporary files, a full disk in one line), the resume rule, finite values,
--print-config and the common vocabulary's aliases."""

import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import AUXUSL_DIR, CONFIGS
from test_train_cli import run_main, tiny

from auxusl.config import setup_cfg
from auxusl.utils.checkpoint import load_checkpoint, save_checkpoint
from auxusl.utils.runfiles import RunError, atomic_write, remove_stale_tmp

TRAIN, TEST = AUXUSL_DIR / "examples" / "train.py", AUXUSL_DIR / "examples" / "test.py"


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cli(script, *args):
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=AUXUSL_DIR,
        timeout=300,
    )


def one_error_line(p):
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    return (
        p.returncode == 2
        and len([x for x in lines if x.startswith("error:")]) == 1
        and "Traceback" not in p.stderr
    )


# ------------------------------------------------------------------------------ no file runs code
@pytest.mark.parametrize("entry", ["train RESUME", "test RESUME", "test --checkpoint", "PRETRAIN_PATH"])
def test_a_crafted_checkpoint_runs_no_code(entry, small_root, tmp_path):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {"x": Evil(marker)}, "epoch": 1}, evil)
    args = tiny(small_root, tmp_path / "logs", aux=False)
    if entry == "train RESUME":
        p = cli(TRAIN, *args, "RESUME", evil)
    elif entry == "test RESUME":
        p = cli(TEST, *args, "RESUME", evil)
    elif entry == "test --checkpoint":
        p = cli(TEST, *args, "--checkpoint", evil)
    else:
        p = cli(TRAIN, *args, "MODEL.BACKBONE.PRETRAIN", "True", "MODEL.BACKBONE.PRETRAIN_PATH", evil)
    assert one_error_line(p), p.stderr
    assert f"cannot load {evil} safely: it holds posix.system" in p.stderr or "os.system" in p.stderr
    assert not marker.exists()


def test_checkpoint_loader_refuses_pickled_code_in_process(tmp_path):
    marker = tmp_path / "MARKER"
    torch.save({"x": Evil(marker)}, tmp_path / "c.pth")
    with pytest.raises(RunError, match="would run code when loaded"):
        load_checkpoint(tmp_path / "c.pth")
    assert not marker.exists()


def test_no_pickle_is_read_anywhere():
    for path in (AUXUSL_DIR / "auxusl").rglob("*.py"):
        text = path.read_text()
        assert "pickle.load" not in text and "allow_pickle=True" not in text, path
        if path.name != "runfiles.py":  # safe_torch_load: the one torch.load, weights_only=True
            assert "torch.load(" not in text, path
    for path in (AUXUSL_DIR / "examples").glob("*.py"):
        text = path.read_text()
        assert "pickle.load" not in text and "torch.load(" not in text, path


# ------------------------------------------------------------------------------ run folders
def test_a_fresh_run_never_writes_into_a_run_folder(small_root, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "results.json").write_text('{"mAP": 52.4}\n')
    before = sorted(p.name for p in logs.iterdir())
    p = cli(TRAIN, *tiny(small_root, logs, aux=False))
    assert one_error_line(p), p.stderr
    assert f"error: {logs} already holds a run (results.json); continue it with RESUME " in p.stderr
    assert "or start a fresh run with another OUTPUT_DIR (--logs-dir)" in p.stderr
    assert (logs / "results.json").read_text() == '{"mAP": 52.4}\n'
    assert sorted(p.name for p in logs.iterdir()) == before  # no log.txt, no config.yaml


# ------------------------------------------------------------------------------ writes
def test_writes_keep_the_umask_mode_and_stale_temporary_files_go(tmp_path):
    old = os.umask(0o022)
    try:
        save_checkpoint({"w": torch.ones(3)}, tmp_path / "checkpoint_new.pth.tar")
        atomic_write(tmp_path / "config.yaml", lambda f: f.write(b"a: 1\n"))
    finally:
        os.umask(old)
    assert (tmp_path / "checkpoint_new.pth.tar").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o644
    stale = tmp_path / ".checkpoint_new.pth.tar.abcd1234.tmp"
    stale.write_bytes(b"half")
    keep = tmp_path / "notes.tmp"
    keep.write_text("mine")
    assert remove_stale_tmp(tmp_path) == [stale] and keep.exists() and not stale.exists()


def test_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
    try:
        path = mnt / "checkpoint_new.pth.tar"
        small = {"w": torch.arange(1000, dtype=torch.float32)}
        save_checkpoint(small, path)
        with pytest.raises(RunError, match=rf"^no space left on device while writing {path} \(\d+\.\d MB\)$"):
            save_checkpoint({"w": torch.zeros(400_000)}, path)  # 1.6 MB into 512 kB
        assert torch.equal(load_checkpoint(path)["w"], small["w"])
        assert [p.name for p in mnt.iterdir()] == ["checkpoint_new.pth.tar"]  # no temporary file left
    finally:
        subprocess.run(["umount", str(mnt)])


# ------------------------------------------------------------------------------ resume rule
def test_resume_refuses_other_settings_but_not_plumbing(train_script, small_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    args = tiny(small_root, logs, aux=False)
    cfg = setup_cfg(args[1], args[2:])
    ckpt = tmp_path / "checkpoint_new.pth.tar"
    torch.save({"config": cfg.dump(), "state_dict": {}, "epoch": 1}, ckpt)
    rc, out, err = run_main(
        train_script, [*args, "RESUME", str(ckpt), "OPTIM.LR", "1e12", "SEED", "3"], capsys
    )
    assert rc == 2
    assert (
        "error: --resume: this command's settings differ from the checkpoint's: OPTIM.LR "
        "(checkpoint 0.00035, now 1000000000000.0); SEED (checkpoint 7, now 3). "
    ) in err
    assert not logs.exists()  # refused before anything is written
    # a resume of a checkpoint kept elsewhere never writes into a folder that holds another run
    logs.mkdir()
    (logs / "results.json").write_text("{}")
    rc, out, err = run_main(train_script, [*args, "RESUME", str(ckpt)], capsys)
    assert rc == 2 and f"error: {logs} already holds a run (results.json)" in err
    assert sorted(p.name for p in logs.iterdir()) == ["results.json"]
    (logs / "results.json").unlink()
    # plumbing (workers, threads, progress) may change: it gets past the rule to the weights
    rc, out, err = run_main(
        train_script, [*args, "RESUME", str(ckpt), "DATALOADER.NUM_WORKERS", "3", "NUM_THREADS", "1"], capsys
    )
    assert rc == 2 and "settings differ" not in err and "do not fit the model" in err


@pytest.mark.parametrize("value", ["1e999", "-1e999"])
def test_non_finite_values_are_refused(train_script, small_root, tmp_path, capsys, value):
    rc, out, err = run_main(train_script, tiny(small_root, tmp_path / "l", "OPTIM.LR", value), capsys)
    assert rc == 2 and "error: OPTIM.LR" in err and "is not a finite number" in err
    assert not (tmp_path / "l").exists()
    preset = tmp_path / "p.yml"
    preset.write_text(f"_BASE_: {CONFIGS / 'smoke_mars.yml'}\nCLUSTER:\n  EPS: .nan\n")
    rc, out, err = run_main(train_script, ["--config-file", str(preset), "--print-config"], capsys)
    assert rc == 2 and "CLUSTER.EPS nan is not a finite number" in err


# ------------------------------------------------------------------------------ --print-config
PAPER = {
    # README rows: config -> values that matter
    "USL_MTCluster.yml": {
        "DATASETS.TARGET": "mars",
        "CLUSTER.K1": 30,
        "CLUSTER.K2": 6,
        "CLUSTER.ADAPTIVE": True,
        "CLUSTER.ADAPTIVE_RHO": 0.0016,
        "CLUSTER.MIN_SAMPLES": 4,
        "OPTIM.EPOCHS": 40,
        "DATALOADER.TRAIN_BATCH_SIZE": 64,
        "MODEL.LOSSES.ID_K": 60,
        "DATALOADER.ITERS_CLUSTER_MULTIPLIER": 0.6,
        "CLUSTER.CCE_OPTION": False,
    },
    "USL_MTCluster_Duke.yml": {
        "DATASETS.TARGET": "duke",
        "DATASETS.MODE": "dense",
        "DATASETS.DENSE_STEP": 40,
        "CLUSTER.K1": 30,
        "CLUSTER.ADAPTIVE_RHO": 0.0016,
        "OPTIM.EPOCHS": 50,
        "DATALOADER.TRAIN_BATCH_SIZE": 64,
        "MODEL.LOSSES.TRI_OPTION": 2,
        "CLUSTER.CCE_OPTION": True,
        "CLUSTER.CCE_LAMBDA": 0.006,
        "CLUSTER.STR_OPTION": True,
        "TEST.CCE_LAMBDA": 0.03,
        "TEST.OVERLAP_CONSTRAINT": True,
    },
}


def flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("config", sorted(PAPER))
def test_print_config_pins_the_paper_commands(config, tmp_path):
    logs = tmp_path / "never"
    p = cli(
        TRAIN,
        "--config-file",
        CONFIGS / config,
        "DATASETS.DIR",
        tmp_path / "nodata",
        "OUTPUT_DIR",
        logs,
        "--print-config",
    )
    assert p.returncode == 0, p.stderr
    got = flat(yaml.safe_load(p.stdout))
    for key, want in PAPER[config].items():
        assert got[key] == want, key
    assert not logs.exists() and not (tmp_path / "nodata").exists()


def test_aliases_map_to_the_original_keys(tmp_path):
    p = cli(
        TRAIN,
        "--config-file",
        CONFIGS / "USL_MTCluster_Duke.yml",
        "OPTIM.EPOCHS",
        "3",
        "--data-root",
        tmp_path / "d",
        "--logs-dir=" + str(tmp_path / "l"),
        "--checkpoint",
        "c.pth.tar",
        "--print-config",
    )
    assert p.returncode == 0, p.stderr
    got = flat(yaml.safe_load(p.stdout))
    assert got["DATASETS.DIR"] == str(tmp_path / "d") and got["OUTPUT_DIR"] == str(tmp_path / "l")
    assert got["RESUME"] == "c.pth.tar" and got["OPTIM.EPOCHS"] == 3
    # the original's keys win over an alias
    p = cli(
        TRAIN,
        "--config-file",
        CONFIGS / "USL_MTCluster.yml",
        "--data-root",
        "a",
        "DATASETS.DIR",
        "b",
        "--print-config",
    )
    assert flat(yaml.safe_load(p.stdout))["DATASETS.DIR"] == "b"
    assert not (tmp_path / "l").exists()


# ------------------------------------------------------------------------------ one cluster
@pytest.mark.slow
def test_collapse_to_one_cluster_warns_every_epoch(train_script, small_root, tmp_path, capsys):
    args = tiny(
        small_root,
        tmp_path / "logs",
        "CLUSTER.ADAPTIVE",
        "False",
        "CLUSTER.EPS",
        "1.5",
        "MODEL.LOSSES.ID_K",
        "1",
        target="mars",
    )
    rc, out, err = run_main(train_script, args, capsys)
    text = out + err
    assert text.count("WARNING: epoch 1: the pseudo-labels collapsed to one cluster") == 1, text[-3000:]
    assert text.count("WARNING: epoch 2: the pseudo-labels collapsed to one cluster") == 1
