"""examples/train.py: the original's defaults, presets, baseline reuse."""
import json

import pytest
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
    assert a.num_ids == 750


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
