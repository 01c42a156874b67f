"""Bad input: a clear error naming the problem (and the fix), never a silent wrong result."""
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import EXAMPLES, PUL_DIR, import_train_script


def run_main(argv, capsys):
    """main() in this process; returns the exit code and stderr (where the one error line goes)."""
    train = import_train_script()
    rc = train.main(argv)
    return rc, capsys.readouterr().err


def test_missing_dataset(tmp_path, capsys):
    rc, out = run_main(["--mode", "baseline", "--dataset", "duke", "--data-root", str(tmp_path),
                        "--logs-dir", str(tmp_path / "logs"), "--pretrained", "none", "--no-progress"],
                       capsys)
    assert rc == 2 and len(out.strip().splitlines()) == 1
    assert "error: dataset folder" in out and "DukeMTMC-reID" in out and "bounding_box_train/" in out
    assert (tmp_path / "logs" / "log.txt").read_text().count("error: dataset folder") == 1


def test_unknown_dataset_and_same_source_target(tmp_path):
    train = import_train_script()
    with pytest.raises(SystemExit):
        train.parse_args(["--dataset", "marke"])
    with pytest.raises(SystemExit):
        train.parse_args(["--dataset", "duke", "--source", "dukemtmcreid"])


def _fake_baseline(tmp_path):
    p = tmp_path / "bl.keras"
    p.write_bytes(b"")
    return p


def test_k_larger_than_the_number_of_images(tiny_data, tmp_path, capsys):
    rc, out = run_main(["--config", str(PUL_DIR / "configs" / "smoke.yaml"), "--dataset", "market",
                        "--data-root", str(tiny_data / "b"), "--baseline", str(_fake_baseline(tmp_path)),
                        "--logs-dir", str(tmp_path / "logs"), "--num-clusters", "100000", "--no-progress"],
                       capsys)
    assert rc == 2
    assert "error: K = 100000 clusters but the target training set has only" in out
    assert "lower --num-clusters" in out


def test_corrupted_image_is_named(tiny_data, tmp_path, capsys):
    copy = tmp_path / "b"
    shutil.copytree(tiny_data / "b", copy)
    victim = sorted((copy / "Market-1501-v15.09.15" / "bounding_box_train").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:100])
    rc, out = run_main(["--config", str(PUL_DIR / "configs" / "smoke.yaml"), "--dataset", "market",
                        "--data-root", str(copy), "--baseline", str(_fake_baseline(tmp_path)),
                        "--logs-dir", str(tmp_path / "logs"), "--no-progress"], capsys)
    assert rc == 2 and f"cannot read image '{victim}'" in out and "corrupted" in out


def test_missing_baseline_is_explained(tiny_data, tmp_path, capsys):
    rc, out = run_main(["--dataset", "market", "--data-root", str(tiny_data / "b"),
                        "--logs-dir", str(tmp_path / "logs")], capsys)
    assert rc == 2 and "PUL starts from a model fine-tuned on a labelled source" in out


@pytest.mark.slow  # fits a network
def test_nan_loss_stops_with_a_message_and_saves_nothing():
    from pul.data import BatchStream
    from pul.model import add_classifier, build_backbone, compile_classifier
    from pul.training import TrainingDivergedError, fit
    model = compile_classifier(add_classifier(build_backbone("resnet18", (32, 16, 3)), 3, seed=0))
    imgs = np.random.default_rng(0).integers(0, 256, (20, 32, 16, 3), dtype=np.uint8)
    targets = np.eye(3, dtype=np.float32)[np.arange(20) % 3]
    targets[7] = np.nan                                     # poisons the batch holding image 7
    saved = []
    msg = r"loss became nan during PUL iteration 4, epoch 1, step \d.*--lr"
    with pytest.raises(TrainingDivergedError, match=msg):
        fit(model, BatchStream(imgs, targets, 16, seed=(0,)), epochs=2, steps=3,
            on_epoch_done=lambda e, logs: saved.append(e), where="PUL iteration 4", verbose=0)
    assert saved == []


def test_pul_never_imports_torch():
    code = (f"import sys; sys.path.insert(0, {str(EXAMPLES)!r})\n"
            "import pul, pul.model, pul.selection, pul.evaluation, pul.training, pul.checkpoint\n"
            "import pul.datasets\n"
            "import pul.convert_cuhk03, train\n"
            "from pul.model import build_backbone, add_classifier, compile_classifier\n"
            "import numpy as np\n"
            "m = compile_classifier(add_classifier(build_backbone('resnet18', (32, 16, 3)), 3))\n"
            "m.train_on_batch(np.zeros((2, 32, 16, 3), 'float32'), np.eye(3)[[0, 1]])\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("NO-TORCH")


def test_target_checks_stop_the_run_before_the_baseline_is_trained(tiny_data, tmp_path, capsys):
    """K larger than the target, or a semi run with every identity known, used to stop only after
    the source baseline had been trained (40 epochs at paper scale); now before any training."""
    common = ["--config", str(PUL_DIR / "configs" / "smoke.yaml"), "--dataset", "market",
              "--data-root", str(tiny_data / "b"), "--source", "duke", "--source-root", str(tiny_data / "a"),
              "--no-progress", "--baseline-epochs", "1"]
    rc, err = run_main([*common, "--logs-dir", str(tmp_path / "k"), "--num-clusters", "100000"], capsys)
    assert rc == 2 and "error: K = 100000 clusters but the target training set has only" in err
    assert not (tmp_path / "k" / "baseline").exists()
    assert "stage 0" not in (tmp_path / "k" / "log.txt").read_text()
    rc, err = run_main([*common, "--logs-dir", str(tmp_path / "s"), "--mode", "semi", "--known", "100",
                        "--num-ids", "200"], capsys)
    assert rc == 2 and "error: semi: all 6 target identities are known (--known 100)" in err
    assert not (tmp_path / "s" / "baseline").exists()
