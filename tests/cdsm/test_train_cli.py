"""train.py / test.py: the original's commands, presets, and bad input (clear errors, no traceback)."""
import json
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import CDSM_DIR, tiny_args

README = {  # the original README's commands, verbatim (after "python examples/train.py")
    "market": "-b 128 -a resnet50 -d market1501 --k1 25 --iters 400 --eps 0.45 --momentum 0.05 "
              "--num-instances 8 --mem-instances 4 --hard-weight 0.5 --pooling-type gem "
              "--memorybank CMhybird_v5 --epochs 50 "
              "--logs-dir examples/logs/market1501/resnet50_gem_cmhybird",
    "duke": "-b 256 -a resnet50 -d dukemtmcreid --k1 30 --iters 400 --eps 0.6 --momentum 0.05 "
            "--num-instances 8 --mem-instances 4 --hard-weight 0.5 --pooling-type gem "
            "--memorybank CMhybird_v5 --epochs 50 "
            "--logs-dir examples/logs/dukemtmcreid/resnet50_gem_cmhybird",
    "msmt17": "-b 256 -a resnet50 -d msmt17 --k1 30 --iters 400 --eps 0.6 --momentum 0.05 "
              "--num-instances 8 --mem-instances 4 --hard-weight 0.5 --pooling-type gem "
              "--memorybank CMhybird_v5 --epochs 50 --logs-dir examples/logs/msmt17/resnet50_gem_cmhybird",
}


@pytest.mark.parametrize("target", sorted(README))
def test_presets_equal_the_readme_commands(train_script, target):
    readme = train_script.parse_args(shlex.split(README[target]))
    preset = train_script.parse_args(["--config", str(CDSM_DIR / "configs" / f"{target}.yml"),
                                      "--logs-dir", readme.logs_dir])
    a, b = vars(readme), vars(preset)
    a.pop("config"), b.pop("config")
    assert a.pop("memorybank_note") and b.pop("memorybank_note") is None  # the misspelling warns
    assert a == b
    assert readme.memorybank == "CMhybrid_v5" and readme.k2 == 6 and readme.eps_gap == 0.02
    assert readme.lr == 3.5e-4 and readme.weight_decay == 5e-4 and readme.step_size == 20
    assert readme.temp == 0.05 and readme.pretrained == "imagenet" and readme.min_samples == 4


def test_original_defaults(train_script):
    a = train_script.parse_args([])
    assert (a.dataset, a.batch_size, a.num_instances, a.mem_instances, a.eps, a.k1, a.momentum,
            a.memorybank, a.epochs, a.iters, a.seed, a.height, a.width) == \
        ("dukemtmcreid", 2, 4, 2, 0.5, 30, 0.1, "CM", 50, 400, 1, 256, 128)
    assert a.rho == 2e-3 and a.eval_step == 1 and a.print_freq == 20
    assert (a.bn_slices, a.amp, a.channels_last) == (4, "off", False)  # [added] flags, fp32


def test_smoke_preset_only_changes_sizes(train_script):
    paper = vars(train_script.parse_args(["--config", str(CDSM_DIR / "configs/market.yml")]))
    smoke = vars(train_script.parse_args(["--config", str(CDSM_DIR / "configs/market.yml"),
                                          "--config", str(CDSM_DIR / "configs/smoke.yml")]))
    changed = {k for k in paper if paper[k] != smoke[k]} - {"config"}
    assert changed <= {"scale", "arch", "pretrained", "height", "width", "pad", "batch_size", "num_instances",
                       "k1", "k2", "eps", "min_samples", "epochs", "iters", "print_freq", "workers",
                       "num_threads", "bn_slices"}
    assert smoke["memorybank"] == "CMhybrid_v5" and smoke["momentum"] == 0.05 and smoke["lr"] == 3.5e-4


def test_bad_config_key(train_script, tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("batchsize: 3\n")
    with pytest.raises(SystemExit) as e:
        train_script.parse_args(["--config", str(bad)])
    assert e.value.code == 2 and "unknown key 'batchsize'" in capsys.readouterr().err


def test_unknown_memory_bank(train_script, capsys):
    with pytest.raises(SystemExit):
        train_script.parse_args(["--memorybank", "CMhybrid_v7"])
    assert "did you mean" in capsys.readouterr().err


def run_main(train_script, args, capsys):
    rc = train_script.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_missing_dataset(train_script, tmp_path, capsys):
    rc, out, err = run_main(train_script, tiny_args(tmp_path / "nothing", tmp_path / "logs"), capsys)
    assert rc == 2
    assert "dataset 'market1501' not found" in err and "Market-1501-v15.09.15" in err
    assert "Traceback" not in err + out
    assert "not found" in (tmp_path / "logs" / "log.txt").read_text()


def test_missing_dataset_from_the_command_line(tmp_path):
    # the real entry point: one line on stderr, status 2, no traceback
    p = subprocess.run([sys.executable, "examples/train.py", "-d", "msmt17", "--data-dir", str(tmp_path),
                        "--logs-dir", str(tmp_path / "logs")], cwd=CDSM_DIR, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2
    assert "error: dataset 'msmt17' not found: expected the folder" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.fixture
def corrupt_copy(tiny_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15", root / "Market-1501-v15.09.15")
    victim = sorted((root / "Market-1501-v15.09.15" / "bounding_box_train").glob("*.jpg"))[5]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])   # a truncated JPEG
    return root, victim


@pytest.mark.parametrize("workers", ["0", "1"])
def test_corrupted_jpeg_names_the_file(train_script, corrupt_copy, tmp_path, capsys, workers):
    root, victim = corrupt_copy
    rc, out, err = run_main(train_script, tiny_args(root, tmp_path / "logs", "-j", workers), capsys)
    assert rc == 2
    assert f"cannot read image {victim.resolve()}" in err
    assert "Traceback" not in err.splitlines()[0]


def test_no_cluster(train_script, tiny_root, tmp_path, capsys):
    args = tiny_args(tiny_root, tmp_path / "logs", "--min-samples", "500")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2
    assert ("DBSCAN (eps 0.5, min_samples 500) found no cluster among the 111 training images "
            "at epoch 0") in err
    assert "Traceback" not in err + out


@pytest.mark.slow  # trains a network
@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_nan_loss_stops_with_a_clear_error(train_script, tiny_root, tmp_path, capsys, amp):
    args = tiny_args(tiny_root, tmp_path / "logs", "--lr", "1e10", "--amp", amp)
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 2
    assert "the loss is nan at epoch 0, iteration" in err and "lower --lr" in err
    # bf16 on a CPU: the message also names oneDNN's small-feature-map bug (root README)
    assert ("with bf16 on a CPU, inputs under 48 pixels wide" in err) == (amp == "bf16")


@pytest.mark.slow  # trains a network
def test_the_readme_spelling_is_warned_in_the_log(train_script, tiny_root, tmp_path, capsys):
    args = tiny_args(tiny_root, tmp_path / "logs", "--memorybank", "CMhybird_v5", "--epochs", "1")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 0
    assert "--memorybank CMhybird_v5 (the README's spelling) is read as CMhybrid_v5" in out
    record = json.loads((tmp_path / "logs" / "results.json").read_text())
    assert record["config"]["memorybank"] == "CMhybrid_v5" and record["variant"] is None


@pytest.mark.slow  # trains a network
@pytest.mark.parametrize("bank", ["CM", "CMhard", "CMhybrid", "CMhybrid_v2", "CMhybrid_v3", "CMhybrid_v4"])
def test_every_memory_bank_runs(train_script, tiny_root, tmp_path, capsys, bank):
    args = tiny_args(tiny_root, tmp_path / "logs", "--memorybank", bank, "--epochs", "1", "--iters", "1")
    rc, out, err = run_main(train_script, args, capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "logs" / "results.json").read_text())["variant"] == bank
    assert "n/a reliable samples" in out   # the reliability criterion belongs to CMhybrid_v5


@pytest.mark.slow  # trains a network
def test_run_outputs_and_test_script(train_script, test_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    rc, out, err = run_main(train_script, tiny_args(tiny_root, logs), capsys)
    assert rc == 0, err
    record = json.loads((logs / "results.json").read_text())
    assert record["method"] == "cdsm" and record["target"] == "market" and record["scale"] == "smoke"
    assert record["selection"] == "best-on-test" and record["native"]["ap"] == "stepwise"
    assert record["native"]["mAP"] == record["common"]["mAP"]
    assert record["epochs"] == 2 and len(record["history"]) == 2
    assert set(record["initial"]) >= {"mAP", "rank1", "rank5", "rank10", "mINP"}
    best = max(h["mAP"] for h in record["history"])
    assert record["common"]["mAP"] == best and record["last"]["mAP"] == record["history"][-1]["mAP"]
    for h in record["history"]:
        assert {"clusters", "outliers", "reliable", "extract_s", "cluster_s", "train_s"} <= set(h)
    log = (logs / "log.txt").read_text()
    assert "==> epoch 1:" in log and "reliable samples" in log and "time extract" in log
    assert list(logs.glob("events.out.tfevents.*")) and (logs / "config.yaml").exists()
    assert not list(logs.glob(".*.tmp"))  # atomic writes leave no temporary file
    # examples/test.py evaluates model_best.pth.tar to the reported numbers
    rc = test_script.main(["-d", "market1501", "--data-dir", str(tiny_root), "--resume",
                           str(logs / "model_best.pth.tar"), "-j", "0", "--output", str(tmp_path / "m.json")])
    assert rc == 0
    got = json.loads((tmp_path / "m.json").read_text())
    assert got["mAP"] == pytest.approx(record["common"]["mAP"], abs=1e-6)
    rc = test_script.main(["-d", "market1501", "--data-dir", str(tiny_root), "--resume",
                           str(logs / "checkpoint.pth.tar"), "-j", "0", "--rerank"])
    assert rc == 0 and "re-ranked mAP" in capsys.readouterr().out


@pytest.mark.slow  # trains a network
def test_tensorboard_scalars_without_tensorflow(train_script, tiny_root, tmp_path, capsys):
    logs = tmp_path / "logs"
    assert train_script.main(tiny_args(tiny_root, logs, "--epochs", "1")) == 0
    code = ("import sys; from tensorboard.backend.event_processing.event_accumulator import EventAccumulator;"
            f"e = EventAccumulator({str(logs)!r}); e.Reload(); print(sorted(e.Tags()['scalars']))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    tags = p.stdout
    for tag in ("eval/mAP", "cluster/clusters", "cluster/outliers", "cluster/reliable", "train/lr",
                "train/loss", "time/extract", "time/cluster", "time/train"):
        assert tag in tags, p.stderr
    assert "tensorflow" not in sys.modules
