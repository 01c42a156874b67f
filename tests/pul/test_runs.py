"""Safe runs (the same rules in all five methods): no file runs code when loaded, a run folder is
never written over, atomic writes with the umask's mode, a full disk is one line, --resume refuses a
changed configuration, a collapsed training set warns, a read-only data root is only read."""
import errno
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import PUL_DIR, import_train_script, readonly_mount, tree_snapshot

from pul.runfiles import RunError


class Evil:
    """Unpickling this runs `touch MARKER` (what a crafted file would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def cli(*args, script="train.py", cwd=PUL_DIR):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, f"examples/{script}", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# TensorFlow 2.21's C++ start-up notices (absl, before its log level applies; TF_CPP_MIN_LOG_LEVEL does
# not silence them): not ours, and printed by every TensorFlow program
TF_NOTICE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} \d\d:\d\d:\d\d)")


def one_error_line(out):
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not TF_NOTICE.match(ln)]
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr[-3000:]
    return lines[0]


def smoke_args(data, logs, *extra):
    return ["--config", PUL_DIR / "configs" / "smoke.yaml", "--dataset", "market", "--data-root", data / "b",
            "--source", "duke", "--source-root", data / "a", "--logs-dir", logs, "--height", "32",
            "--width", "16", "--baseline-epochs", "1", "--iterations", "2", "--epochs", "1",
            "--kmeans-n-init", "1", "--no-progress", "--eval-every", "0", *extra]


def stored_state(logs, argv, **changes):
    """A PUL state in logs, as a run of `argv` stores it (its configuration included)."""
    cfg = import_train_script().parse_args([str(a) for a in argv])._config
    cfg.update(changes)
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "state.json").write_text(json.dumps({"stage": "pul", "iteration": 1, "epoch_done": 1,
                                                 "finished": False, "config": cfg}))
    return cfg


# ------------------------------------------------------------------------------ 1. no file runs code
def test_a_crafted_rng_state_is_refused_without_running_it(tiny_data, tmp_path):
    logs, marker = tmp_path / "logs", tmp_path / "MARKER"
    argv = smoke_args(tiny_data, logs)
    stored_state(logs, argv)
    with open(logs / "state.rng.npz", "wb") as f:          # an object array: a pickle inside the npz
        np.savez(f, python_internal=np.array([Evil(marker)], dtype=object))
    line = one_error_line(cli(*argv, "--resume"))
    assert "state.rng.npz" in line and "would run code" in line
    assert not marker.exists()


def test_an_old_pickled_rng_state_is_never_read(tiny_data, tmp_path):
    """state.rng.pkl of earlier versions: not unpickled (here the resume stops on its --lr first)."""
    import pickle
    logs, marker = tmp_path / "logs", tmp_path / "MARKER"
    argv = smoke_args(tiny_data, logs)
    stored_state(logs, argv)
    (logs / "state.rng.pkl").write_bytes(pickle.dumps(Evil(marker)))
    line = one_error_line(cli(*argv, "--resume", "--lr", "0.5"))
    assert "lr (checkpoint 0.01, now 0.5)" in line
    assert not marker.exists()


def crafted_keras_file(path, marker):
    """A .keras model whose Lambda layer would run `touch MARKER` when deserialised unsafely."""
    import keras
    command = f"touch {marker}"
    inp = keras.Input((4,))
    out = keras.layers.Lambda(lambda x: (os.system(command), x)[1])(inp)
    keras.Model(inp, out).save(path)
    if marker.exists():
        marker.unlink()   # building it ran the lambda once; only loading matters


def test_test_py_refuses_a_crafted_model(tiny_data, tmp_path):
    evil, marker = tmp_path / "evil.keras", tmp_path / "MARKER"
    crafted_keras_file(evil, marker)
    for argv in ([evil], ["--checkpoint", evil]):
        line = one_error_line(cli(*argv, "--dataset", "market", "--data-root", tiny_data / "b",
                                  script="test.py"))
        assert "evil.keras" in line
        assert not marker.exists()


def test_train_py_refuses_a_crafted_baseline(tiny_data, tmp_path):
    evil, marker = tmp_path / "evil.keras", tmp_path / "MARKER"
    crafted_keras_file(evil, marker)
    argv = smoke_args(tiny_data, tmp_path / "logs")
    argv[argv.index("--source"):argv.index("--source") + 4] = ["--baseline", evil]
    line = one_error_line(cli(*argv))
    assert "evil.keras" in line
    assert not marker.exists()


# ------------------------------------------------------------------------------ 2. run folders
def test_a_fresh_run_never_writes_into_a_folder_holding_a_run(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "results.json").write_text('{"common": {"mAP": 52.4}}\n')
    before = tree_snapshot(logs)
    line = one_error_line(cli("--mode", "baseline", "--dataset", "duke", "--data-root", tmp_path / "none",
                              "--logs-dir", logs))
    assert str(logs) in line and "already holds a run (results.json)" in line
    assert f"--resume --logs-dir {logs}" in line and "another --logs-dir" in line
    assert tree_snapshot(logs) == before
    assert (logs / "results.json").read_text() == '{"common": {"mAP": 52.4}}\n'


def test_resume_needs_a_run(tmp_path):
    line = one_error_line(cli("--dataset", "market", "--source", "duke", "--logs-dir", tmp_path / "empty",
                              "--resume"))
    assert "holds no run to continue" in line and not (tmp_path / "empty").exists()


# ------------------------------------------------------------------------------ 4. resume rule
def test_resume_refuses_changed_settings_but_not_plumbing(tiny_data, tmp_path):
    logs = tmp_path / "logs"
    argv = smoke_args(tiny_data, logs)
    stored_state(logs, argv)
    before = tree_snapshot(logs)
    line = one_error_line(cli(*argv, "--resume", "--lr", "1e12", "--num-clusters", "7"))
    assert "differ from the checkpoint's" in line
    assert "lr (checkpoint 0.01, now 1000000000000.0)" in line
    assert "num_clusters (checkpoint 'auto', now 7)" in line
    assert tree_snapshot(logs) == before
    # plumbing may change: other data paths, workers, progress, the logs folder's spelling
    train = import_train_script()
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    args = train.parse_args([str(a) for a in smoke_args(moved, logs, "--resume", "--workers", "1")])
    from pul.engine import check_run_folder
    assert check_run_folder(logs, args.resume, args._config, train.PLUMBING).startswith(
        "=> --resume: the settings match")


# ------------------------------------------------------------------------------ 3. writes
def test_atomic_writes_keep_the_umask_mode_and_leave_no_temporary_files(tmp_path):
    import keras

    from pul.checkpoint import save_arrays, save_json, save_model
    old = os.umask(0o022)
    try:
        save_json({"a": 1}, tmp_path / "s.json")
        save_arrays(tmp_path / "a.npz", x=np.arange(3))
        inp = keras.Input((2,))
        save_model(keras.Model(inp, keras.layers.Dense(1)(inp)), tmp_path / "m.keras")
    finally:
        os.umask(old)
    for n in ("s.json", "a.npz", "m.keras"):
        assert (tmp_path / n).stat().st_mode & 0o777 == 0o644, n
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "m.keras", "s.json"]
    with pytest.raises(ValueError):            # strict JSON: no NaN
        save_json({"mAP": float("nan")}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists() and len(list(tmp_path.iterdir())) == 3


def test_stale_temporary_files_are_removed_at_the_next_start(tmp_path):
    logs = tmp_path / "logs"
    (logs / "checkpoints").mkdir(parents=True)
    stale = [logs / ".args.json.k2j4_x9a.tmp", logs / "checkpoints" / ".last.keras.abcd1234.tmp.keras"]
    for p in stale:
        p.write_bytes(b"half")
    (logs / "notes.tmp").write_text("not ours")
    out = cli("--mode", "baseline", "--dataset", "duke", "--data-root", tmp_path / "none",
              "--logs-dir", logs)
    assert out.returncode == 2                  # no dataset; the start cleaned up first
    assert not any(p.exists() for p in stale) and (logs / "notes.tmp").exists()
    log = (logs / "log.txt").read_text()
    assert all(f"removed {p}" in log for p in stale)


@pytest.fixture()
def small_tmpfs(tmp_path):
    d = tmp_path / "tmpfs"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here (needs root): no full disk to test with")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_full_disk_is_one_line_and_keeps_the_previous_file(small_tmpfs):
    import keras

    from pul.checkpoint import load_arrays, save_arrays, save_model
    from pul.model import load_model
    from pul.runfiles import disk_full_line
    small = np.arange(1000, dtype=np.int64)
    save_arrays(small_tmpfs / "sel.npz", x=small)
    with pytest.raises(RunError, match=r"^no space left on device while writing .*sel\.npz \(\d+\.\d MB\)$"):
        save_arrays(small_tmpfs / "sel.npz", x=np.zeros(2**18))          # 2 MB into 256 kB
    np.testing.assert_array_equal(load_arrays(small_tmpfs / "sel.npz")["x"], small)
    # a Keras model (written by Keras' own zip writer)
    inp = keras.Input((4,))
    m = keras.Model(inp, keras.layers.Dense(2)(inp))
    save_model(m, small_tmpfs / "last.keras")
    big_in = keras.Input((512,))
    big = keras.Model(big_in, keras.layers.Dense(512)(big_in))           # 1 MB of weights
    full = r"^no space left on device while writing .*last\.keras \(\d+\.\d MB\)$"
    with pytest.raises(RunError, match=full):
        save_model(big, small_tmpfs / "last.keras")
    again = load_model(small_tmpfs / "last.keras", compile=False)
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), m.get_weights()))
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["last.keras", "sel.npz"]
    # main()'s last resort for an OSError raised elsewhere (log file, TensorBoard)
    assert disk_full_line(OSError(errno.ENOSPC, "No space left on device", "/x/log.txt")) == \
        "error: no space left on device while writing /x/log.txt"


# ------------------------------------------------------------------------------ 5. collapse warning
def test_a_single_label_training_set_warns():
    from pul.engine import collapse_warning
    assert collapse_warning(2, "PUL iteration 1") is None
    line = collapse_warning(1, "PUL iteration 3")
    assert line.startswith("WARNING: PUL iteration 3: the training set has 1 label(s)")


# ------------------------------------------------------------------------------ 6. read-only data
@pytest.mark.slow  # a baseline and two PUL iterations of one epoch each
def test_a_run_on_a_read_only_data_root_writes_nothing_there(tiny_data, tmp_path_factory):
    """Both data roots mounted read-only; K = 1 also shows the collapse warning every epoch."""
    logs = tmp_path_factory.mktemp("logs") / "run"
    with readonly_mount(tiny_data, tmp_path_factory.mktemp("ro")) as ro:
        before = tree_snapshot(ro)
        out = cli(*smoke_args(ro, logs, "--num-clusters", "1"))
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert tree_snapshot(ro) == before
    assert (logs / "results.json").is_file()
    log = (logs / "log.txt").read_text()
    for t in (1, 2):
        assert f"WARNING: PUL iteration {t}: the training set has 1 label(s)" in log
        assert f"WARNING: PUL iteration {t}: the training set has 1 label(s): all images carry one " \
               "(pseudo-)identity, so the classifier learns nothing. Check the dataset, K (--num-clusters) " \
               "and lambda (--lambda) (epoch 1)" in log
