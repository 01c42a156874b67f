"""Safe runs (README, "Runs and resume"): no file runs code when loaded, a run folder is never
overwritten, atomic writes keep the umask's mode and clean up after a kill, a full disk is one
line with the previous checkpoint intact, --resume refuses a changed configuration, floats are
finite, bad input is one ``error:`` line; and --print-config / the common flag aliases."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import CCC_DIR, tiny_args

from ccc import engine, models
from ccc.utils.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from ccc.utils.runfiles import RunError, atomic_write, remove_stale_tmp

EVIL = """
import os, sys, torch
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
torch.save({"model": {"x": Evil()}, "format": "ccc-checkpoint-1"}, sys.argv[1])
"""


@pytest.fixture
def evil(tmp_path):
    path, marker = tmp_path / "evil.pth.tar", tmp_path / "MARKER"
    subprocess.run([sys.executable, "-c", EVIL, str(path), str(marker)], check=True, timeout=120)
    assert not marker.exists()
    return path, marker


def one_error_line(p):
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr[-3000:]
    return lines[0]


def script(name, *args, timeout=300):
    return subprocess.run([sys.executable, f"examples/{name}.py", *map(str, args)], cwd=CCC_DIR,
                          capture_output=True, text=True, timeout=timeout)


def test_crafted_pickle_is_refused_by_every_loader(evil, tiny_root, tmp_path):
    path, marker = evil
    want = f"error: cannot load {path} safely: it holds posix.system, which would run code when loaded"
    p = script("train", *tiny_args(tiny_root, tmp_path / "resume", "--resume", path))
    assert one_error_line(p).startswith(want) and not marker.exists()
    p = script("test", "--dataset", "market1501", "--root-dir", tiny_root, "--resume", path)
    assert one_error_line(p).startswith(want) and not marker.exists()
    p = script("train", *tiny_args(tiny_root, tmp_path / "pretrained", "--pretrained", path))
    assert one_error_line(p).startswith(want) and not marker.exists()


def test_fresh_run_refuses_a_folder_that_holds_a_run(train_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "results.json").write_text('{"mAP": 52.4}\n')
    before = sorted(logs.iterdir())
    rc = train_script.main(tiny_args(tiny_root, logs))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {logs} already holds a run (results.json); continue it with --resume "
                          f"{logs / 'checkpoint.pth.tar'}, or start a fresh run with another --log-dir")
    assert sorted(logs.iterdir()) == before and (logs / "results.json").read_text() == '{"mAP": 52.4}\n'


def fake_checkpoint(train_script, tiny_root, folder, *extra):
    """A checkpoint of this format that records the configuration of tiny_args (no training)."""
    args = train_script.parse_args(tiny_args(tiny_root, folder, *extra))
    path = folder / "checkpoint.pth.tar"
    save_checkpoint({"format": FORMAT, "epoch": 1, "args": train_script.config_of(args)}, path)
    return path


def preflight(train_script, args):
    """The run-folder preflight of main() (ccc.engine.preflight) for parsed flags."""
    return engine.preflight(args.resume, args.log_dir, args.ckpt_dir, train_script.config_of(args),
                            train_script.MAY_CHANGE)


def test_resume_refuses_changed_settings_and_allows_plumbing(train_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    ckpt = fake_checkpoint(train_script, tiny_root, logs)
    data = ckpt.read_bytes()
    rc = train_script.main(tiny_args(tiny_root, logs, "--resume", str(ckpt), "--lr", "1e12", "--iters", "5"))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --resume: this command's settings differ from the checkpoint's: "
                          "iters (checkpoint 2, now 5); lr (checkpoint 0.00035, now 1000000000000.0). "
                          "Drop or "
                          "correct those flags")
    assert ckpt.read_bytes() == data and sorted(p.name for p in logs.iterdir()) == ["checkpoint.pth.tar"]
    # run plumbing may change: folders, workers, threads, device, printing
    moved = tmp_path / "moved"
    shutil.copytree(tiny_root, moved)
    args = train_script.parse_args(tiny_args(moved, logs, "--resume", str(ckpt), "--num-workers", "3",
                                             "--num-threads", "1", "--device", "cpu", "--print-freq", "7"))
    assert preflight(train_script, args)["epoch"] == 1
    # resuming into another folder that holds a run is refused like a fresh run
    other = tmp_path / "other"
    fake_checkpoint(train_script, tiny_root, other)
    args = train_script.parse_args(tiny_args(tiny_root, other, "--resume", str(ckpt)))
    with pytest.raises(RunError, match="already holds a run"):
        preflight(train_script, args)


def test_resume_missing_checkpoint(tmp_path, tiny_root):
    p = script("train", *tiny_args(tiny_root, tmp_path / "logs", "--resume", tmp_path / "nope.pth.tar"))
    assert one_error_line(p) == f"error: checkpoint {tmp_path / 'nope.pth.tar'} does not exist"


def test_non_finite_floats_are_refused(train_script, tmp_path, capsys):
    for argv in (["--lr", "inf"], ["--cm-momentum", "nan"], ["--dbscan-eps", "1e999"], ["--threshold=-inf"]):
        with pytest.raises(SystemExit) as e:
            train_script.parse_args(argv)
        assert e.value.code == 2 and "is not a finite number" in capsys.readouterr().err
    preset = tmp_path / "p.yml"
    preset.write_text("lr: .inf\n")
    with pytest.raises(SystemExit) as e:
        train_script.parse_args(["--config", str(preset)])
    assert e.value.code == 2 and "--lr: inf is not a finite number" in capsys.readouterr().err


def test_atomic_writes_keep_the_umask_mode_and_stale_tmp_is_removed(train_script, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        p = save_checkpoint({"x": torch.ones(3)}, tmp_path / "checkpoint.pth.tar")
        q = atomic_write(tmp_path / "config.yaml", lambda f: f.write(b"a: 1\n"))
        assert oct(p.stat().st_mode & 0o777) == oct(q.stat().st_mode & 0o777) == "0o644"
        os.umask(0o027)
        p = save_checkpoint({"x": torch.ones(3)}, tmp_path / "checkpoint.pth.tar")
        assert oct(p.stat().st_mode & 0o777) == "0o640"
    finally:
        os.umask(old)
    assert not list(tmp_path.glob(".*.tmp"))
    # a killed write leaves .NAME.XXXXXXXX.tmp: the next run in that folder removes it (and says so)
    logs = tmp_path / "logs"
    logs.mkdir()
    stale = logs / ".checkpoint.pth.tar.k2x9_q1z.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = logs / "notes.tmp"
    keep.write_text("mine")
    rc = train_script.main(tiny_args(tmp_path / "no-data", logs))   # stops at the missing dataset
    assert rc == 2 and not stale.exists() and keep.exists()
    assert f"removed {stale}" in (logs / "log.txt").read_text()
    assert remove_stale_tmp(logs) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if p.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.strip()}")
    try:
        yield mnt
    finally:   # lazily if a failed write still holds a file open there
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_full_disk_is_one_line_and_the_previous_checkpoint_survives(tiny_tmpfs):
    path = tiny_tmpfs / "checkpoint.pth.tar"
    first = {"epoch": 1, "w": torch.arange(1000.0)}
    save_checkpoint(first, path)
    with pytest.raises(RunError) as e:
        save_checkpoint({"epoch": 2, "w": torch.zeros(1_000_000)}, path)   # 4 MB into 256 kB
    assert str(e.value).startswith(f"no space left on device while writing {path} (")
    assert str(e.value).endswith(" MB)")
    back = load_checkpoint(path)
    assert back["epoch"] == 1 and torch.equal(back["w"], first["w"])
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["checkpoint.pth.tar"]


@pytest.fixture
def no_valid_query(tiny_root, tmp_path):
    """A Market copy whose gallery ids are not those of the query: no query has a true match."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", root / "Market-1501-v15.09.15")
    for f in (root / "Market-1501-v15.09.15" / "bounding_box_test").glob("*.jpg"):
        pid, rest = f.name.split("_", 1)
        if int(pid) > 0:
            f.rename(f.with_name(f"1501_{rest}"))   # one id the query lacks
    return root


def test_evaluation_error_is_one_line_in_train_and_test(no_valid_query, tmp_path):
    p = script("train", *tiny_args(no_valid_query, tmp_path / "logs"))
    line = one_error_line(p)
    assert line.startswith("error: cannot evaluate on market1501 (no valid query") and "--root-dir" in line
    model = models.create("resnet18", pretrained="none")
    ckpt = tmp_path / "m.pth.tar"
    save_checkpoint({"format": FORMAT, "model": model.state_dict(),
                     "args": {"arch": "resnet18", "pooling_type": "gem", "height": 32, "width": 16}}, ckpt)
    p = script("test", "--dataset", "market", "--data-root", no_valid_query, "--checkpoint", ckpt,
               "--num-workers", "0", "--output", tmp_path / "m.json")
    assert one_error_line(p).startswith("error: cannot evaluate on market1501 (no valid query")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.slow
def test_one_cluster_warns_every_epoch(train_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    args = tiny_args(tiny_root, logs, "--num-clusters", "1", "--warmup-iters", "0", "--iters", "1",
                     cluster="kmeans")
    assert train_script.main(args) == 0
    log = (logs / "log.txt").read_text()
    for epoch in (0, 1):
        assert f"WARNING: epoch {epoch}: the pseudo-labels collapsed to ONE cluster" in log
    json.loads((logs / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


# ------------------------------------------------------------------------- --print-config, aliases
COMMON = {"jaccard_k1": 30, "jaccard_k2": 6, "dbscan_eps": 0.6, "cm_mode": "hd_camera", "cm_momentum": 0.1,
          "cm_temperature": 0.05, "loss_with_camera": True, "num_epochs": 60, "batch_size": 256,
          "num_instances": 16, "lr": 3.5e-4, "lr_weight_decay": 5e-4, "warmup_iters": 10,
          "cluster_min_instances": 4, "arch": "resnet50", "resnet_pretrained": "V1", "pooling_type": "gem",
          "bn_slices": 2, "seed": 999, "eval_step_epoch": 5}
PAPER = {  # (cluster, dataset): README Table III (configs/<cluster>/<dataset>.yml = the original's command)
    ("hdc", "market"): dict(num_clusters=750, iters=200, warmup_with_dbscan=True, hdc_outlier=True,
                            hdc_centroids=True, hdc_init="k-means++2", height=256, width=128),
    ("hdc", "msmt17"): dict(num_clusters=1000, iters=400, warmup_with_dbscan=True, hdc_outlier=True,
                            hdc_centroids=True, hdc_init="k-means++2", height=256, width=128),
    ("hdc", "veri"): dict(num_clusters=1000, iters=400, warmup_with_dbscan=True, hdc_outlier=False,
                          hdc_centroids=True, hdc_init="k-means++2", height=224, width=224),
    ("dbscan", "market"): dict(iters=200, warmup_with_dbscan=False, height=256, width=128),
    ("dbscan", "msmt17"): dict(iters=400, warmup_with_dbscan=False, height=256, width=128),
    ("dbscan", "veri"): dict(iters=400, warmup_with_dbscan=False, height=224, width=224),
    ("kmeans", "market"): dict(num_clusters=750, iters=200, warmup_with_dbscan=True, height=256, width=128),
    ("kmeans", "msmt17"): dict(num_clusters=1000, iters=400, warmup_with_dbscan=True, height=256, width=128),
    ("kmeans", "veri"): dict(num_clusters=1000, iters=400, warmup_with_dbscan=True, height=224, width=224),
}
DATASET = {"market": "market1501", "msmt17": "msmt17", "veri": "veri"}


def printed_config(train_script, argv, capsys):
    assert train_script.main(argv) == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("cluster,target", sorted(PAPER))
def test_print_config_pins_the_paper_commands(train_script, tmp_path, capsys, cluster, target):
    logs = tmp_path / "logs"
    cfg = printed_config(train_script, ["--config", str(CCC_DIR / "configs" / cluster / f"{target}.yml"),
                                        "--root-dir", str(tmp_path / "data"), "--log-dir", str(logs),
                                        "--print-config"], capsys)
    want = dict(COMMON, **PAPER[cluster, target], cluster=cluster, dataset=DATASET[target])
    assert {k: cfg[k] for k in want} == want
    assert "print_config" not in cfg and not logs.exists() and not (tmp_path / "data").exists()


def test_print_config_of_the_readme_variants(train_script, capsys):
    hdc = ["--config", str(CCC_DIR / "configs" / "hdc" / "market.yml"), "--print-config"]
    assert printed_config(train_script, hdc + ["--no-loss-with-camera"], capsys)["loss_with_camera"] is False
    cfg = printed_config(train_script, hdc + ["--cm-mode", "tccl_camera", "--resnet-pretrained", "V2"],
                         capsys)
    assert (cfg["cm_mode"], cfg["resnet_pretrained"]) == ("tccl_camera", "V2")
    main_py = ("--dataset market1501 --height 256 --width 128 --num-clusters 750 --iters 200 --num-epochs 60 "
               "--warmup-iters 10 --warmup-with-dbscan --dbscan-eps 0.6 --arch resnet50 "
               "--resnet-pretrained V1 "
               "--pooling-type gem --hdc-outlier --hdc-centroids --hdc-init k-means++2 --cm-mode hd_camera "
               "--loss-with-camera --root-dir /data --log-dir logs/log").split()
    assert printed_config(train_script, main_py + ["--print-config"], capsys) == \
        printed_config(train_script, hdc + ["--root-dir", "/data", "--log-dir", "logs/log"], capsys)


def test_print_config_through_the_adapter(tmp_path):
    logs = tmp_path / "logs"
    p = subprocess.run([str(CCC_DIR / "reproduce.sh"), "veri", "--cluster", "kmeans", "--smoke",
                        "--data-root",
                        str(tmp_path / "data"), "--logs-dir", str(logs), "--print-config"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load(p.stdout)
    assert (cfg["cluster"], cfg["dataset"], cfg["scale"], cfg["arch"]) == \
        ("kmeans", "veri", "smoke", "resnet18")
    assert cfg["log_dir"] == str(tmp_path / "logs-kmeans") and list(tmp_path.iterdir()) == []


def test_common_aliases(train_script, test_script):
    a = vars(train_script.parse_args(["--dataset", "market", "--data-root", "/d", "--logs-dir", "/l"]))
    b = vars(train_script.parse_args(["--dataset", "market1501", "--root-dir", "/d", "--log-dir", "/l"]))
    assert a == b
    t = test_script.build_parser()
    assert vars(t.parse_args(["--dataset", "market", "--data-root", "/d", "--checkpoint", "m.pth"])) == \
        vars(t.parse_args(["--dataset", "market1501", "--root-dir", "/d", "--resume", "m.pth"]))
