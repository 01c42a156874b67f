"""examples/train.py: the original's defaults, presets, K, --print-config, baseline reuse."""
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import PUL_DIR, import_train_script


def test_defaults_are_the_originals():
    a = import_train_script().parse_args(["--dataset", "market"])
    assert (a.height, a.width, a.batch_size, a.lr, a.momentum) == (224, 224, 16, 0.001, 0.9)
    assert (a.baseline_epochs, a.iterations, a.epochs, a.lam, a.selection) == (40, 25, 20, 0.85, "code")
    assert (a.arch, a.pretrained, a.dropout, a.rotation, a.shift) == ("resnet50", "imagenet", 0.5, 20.0, 0.2)
    assert (a.kmeans_n_init, a.kmeans_max_iter, a.baseline_lr) == (10, 300, 0.001)
    assert a.mode == "unsupervised" and a.known == 50 and a.scale == "paper"


def test_presets_per_target_and_smoke():
    train = import_train_script()
    for target, k in (("market", 750), ("duke", 700), ("cuhk03", 750)):
        a = train.parse_args(["--config", str(PUL_DIR / "configs" / f"{target}.yaml")])
        assert int(a.num_clusters) == k
    a = train.parse_args(["--config", str(PUL_DIR / "configs" / "market.yaml"),
                          "--config", str(PUL_DIR / "configs" / "smoke.yaml"), "--epochs", "7"])
    assert a.scale == "smoke" and a.arch == "resnet18" and a.epochs == 7 and a.num_clusters == "auto"
    a = train.parse_args(["--dataset", "market", "--mode", "semi"])
    assert a.num_ids == 750 and a.num_clusters == 700


def test_unknown_preset_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lamda: 0.9\n")
    with pytest.raises(SystemExit):
        import_train_script().parse_args(["--dataset", "market", "--config", str(bad)])


def test_finished_baseline_is_reused_only_with_the_same_settings(tmp_path):
    from pul import PULError
    train = import_train_script()
    args = train.parse_args(["--dataset", "duke", "--mode", "baseline", "--pretrained", "none"])
    settings = {k: getattr(args, k) for k in train.BASELINE_KEYS}
    settings["source"] = "dukemtmcreid"
    folder = tmp_path / "baseline"
    folder.mkdir()
    (folder / "0.keras").write_bytes(b"model")
    (folder / "baseline.json").write_text(json.dumps({"complete": True, "settings": settings,
                                                      "path": str(folder / "0.keras")}))
    out = train.run_baseline(args, folder, "dukemtmcreid", str(tmp_path / "no-data-needed"))
    assert out["reused"] is True and out["path"] == str(folder / "0.keras")
    args.baseline_epochs = 3
    with pytest.raises(PULError, match="baseline_epochs: 40 there, 3 now"):
        train.run_baseline(args, folder, "dukemtmcreid", str(tmp_path))


def test_semi_with_the_target_preset_uses_num_ids_minus_known():
    """semi-supervised.py: NUM_CLUSTER = NUM_IDS - KNOWN = 750 - 50 = 700. configs/market.yaml's 750
    is the unsupervised K; taken in semi mode it made the classifier too narrow (750 < 50 + 750), which
    stopped the run after the 40-epoch baseline."""
    train = import_train_script()
    a = train.parse_args(["--config", str(PUL_DIR / "configs" / "market.yaml"), "--mode", "semi"])
    assert (a.num_clusters, a.num_ids, a.known) == (700, 750, 50)
    a = train.parse_args(["--config", str(PUL_DIR / "configs" / "market.yaml"), "--mode", "semi",
                          "--known", "25"])
    assert a.num_clusters == 725
    a = train.parse_args(["--config", str(PUL_DIR / "configs" / "duke.yaml"), "--mode", "semi"])
    assert (a.num_clusters, a.num_ids) == (650, 700)
    # an explicit --num-clusters wins; one that does not fit the classifier stops at parse time
    a = train.parse_args(["--config", str(PUL_DIR / "configs" / "market.yaml"), "--mode", "semi",
                          "--num-clusters", "600"])
    assert a.num_clusters == 600
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--dataset", "market", "--mode", "semi", "--num-clusters", "750"])
    assert e.value.code == 2
    # unsupervised: the presets' K
    assert train.parse_args(["--config", str(PUL_DIR / "configs" / "market.yaml")]).num_clusters == 750


def print_config(*args, cwd=PUL_DIR):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("source,target,extra,expect", [
    ("duke", "market", [], {"num_clusters": 750, "mode": "unsupervised"}),
    ("market", "duke", [], {"num_clusters": 700, "mode": "unsupervised"}),
    ("duke", "cuhk03", [], {"num_clusters": 750, "mode": "unsupervised"}),
    ("duke", "market", ["--mode", "semi"],
     {"num_clusters": 700, "num_ids": 750, "known": 50, "mode": "semi"}),
])
def test_print_config_of_the_paper_commands(tmp_path, source, target, extra, expect):
    """What `./reproduce.sh pul SOURCE TARGET [--mode semi] --print-config` runs: the resolved YAML,
    exit 0, no data read and nothing written (the data roots need not exist)."""
    logs = tmp_path / "logs"
    out = print_config(str(PUL_DIR / "reproduce.sh"), target, "--data-root", str(tmp_path / "nodata"),
                       "--logs-dir", str(logs), "--source", source, *extra, "--print-config")
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = yaml.safe_load(out.stdout)
    paper = {"baseline_epochs": 40, "iterations": 25, "epochs": 20, "lam": 0.85, "batch_size": 16,
             "lr": 0.001, "baseline_lr": 0.001, "momentum": 0.9, "height": 224, "width": 224,
             "arch": "resnet50", "selection": "code", "kmeans_n_init": 10, "scale": "paper"}
    assert {k: cfg[k] for k in paper} == paper
    assert {k: cfg[k] for k in expect} == expect
    assert not logs.exists() and not (tmp_path / "nodata").exists()


def test_print_config_of_the_smoke_preset(tmp_path):
    out = print_config(sys.executable, "examples/train.py", "--config", "configs/market.yaml",
                       "--config", "configs/smoke.yaml", "--dataset", "market", "--source", "duke",
                       "--logs-dir", str(tmp_path / "logs"), "--print-config")
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = yaml.safe_load(out.stdout)
    assert (cfg["arch"], cfg["base_width"], cfg["height"], cfg["width"]) == ("resnet18", 32, 64, 32)
    assert (cfg["baseline_epochs"], cfg["iterations"], cfg["epochs"], cfg["lr"]) == (24, 3, 10, 0.01)
    assert cfg["num_clusters"] == "auto" and cfg["kmeans_n_init"] == 3
    assert not (tmp_path / "logs").exists()


def test_non_finite_floats_are_refused_at_parse_time(tmp_path):
    train = import_train_script()
    for flag, value in (("--lr", "inf"), ("--lambda", "nan"), ("--baseline-lr", "1e999"),
                        ("--dropout", "-inf")):
        with pytest.raises(SystemExit) as e:
            train.parse_args(["--dataset", "market", flag, value])
        assert e.value.code == 2
    preset = tmp_path / "p.yaml"
    preset.write_text("lr: .inf\n")
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--dataset", "market", "--config", str(preset)])
    assert e.value.code == 2
