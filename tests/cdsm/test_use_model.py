"""Using a trained model: cdsm.FeatureExtractor, examples/extract.py, examples/export.py (ONNX),
test.py from the checkpoint alone, --visrank, and the TensorBoard tags shared by the five methods.

All on one tiny trained run per session (conftest.tiny_run: ResNet-18 at 32 x 16, one epoch).
"""
import json
import logging
import math
import sys
import types

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image

from cdsm import FeatureExtractor, list_inputs
from cdsm.utils.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # the session's tiny run trains a network


@pytest.fixture(autouse=True)
def fresh_console_logging():
    """The scripts' console_logging() binds a handler to the sys.stdout of the moment (here a
    test's capture, closed after it) unless the 'cdsm' logger has one: each test starts without
    handlers there, and the logger is restored afterwards."""
    logger = logging.getLogger("cdsm")
    saved = list(logger.handlers), logger.level, logger.propagate
    for handler in saved[0]:
        logger.removeHandler(handler)
    yield
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    for handler in saved[0]:
        logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.fixture(scope="module")
def extract_script():
    return load_script("extract")


@pytest.fixture(scope="module")
def export_script():
    return load_script("export")


def query_folder(tiny_root):
    return tiny_root / "Market-1501-v15.09.15" / "query"


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_checkpoints_carry_the_configuration(tiny_run):
    for name in ("model_best.pth.tar", "checkpoint.pth.tar"):
        config = load_checkpoint(tiny_run / name)["config"]
        assert (config["arch"], config["height"], config["width"], config["dataset"]) == \
            ("resnet18", 32, 16, "market1501")
        assert all(v is None or isinstance(v, (str, int, float, bool, list)) for v in config.values())


def printed(capsys, caplog) -> str:
    """What the script said: its console handler's stdout, or, when an earlier test of this
    process left the ``cdsm`` logger with another handler, the records that propagated."""
    return capsys.readouterr().out + caplog.text


def test_test_py_from_the_checkpoint_alone_and_help(test_script, tiny_run, capsys, caplog):
    caplog.set_level(logging.INFO, logger="cdsm")
    with pytest.raises(SystemExit) as e:
        test_script.main(["--help"])
    assert e.value.code == 0
    capsys.readouterr()
    assert test_script.main(["--checkpoint", str(tiny_run / "model_best.pth.tar")]) == 0
    out = printed(capsys, caplog)
    best = json.loads((tiny_run / "results.json").read_text())["common"]
    assert "resnet18, gem pooling, 32x16" in out and "market1501 in" in out
    assert f"mAP {best['mAP']:.1f}  rank-1 {best['rank1']:.1f}" in out


def test_extractor_equals_the_features_test_py_ranks(test_script, tiny_run, tiny_root):
    ckpt = tiny_run / "model_best.pth.tar"
    args = test_script.build_parser().parse_args(["--checkpoint", str(ckpt), "-j", "0"])
    dataset, qf, _ = test_script.query_gallery_features(args)
    extractor = FeatureExtractor(ckpt)
    feats = extractor([path for path, _, _ in dataset.query])
    assert feats.dtype == np.float32 and feats.shape == tuple(qf.shape) == (len(dataset.query), 512)
    np.testing.assert_allclose(feats, qf.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    # a folder: every image under it, sorted by relative path (the dataset's order here)
    paths, names = list_inputs(query_folder(tiny_root))
    assert [str(p) for p in paths] == [str(p) for p, _, _ in dataset.query]
    np.testing.assert_allclose(extractor(query_folder(tiny_root)), feats, atol=1e-5)
    # PIL images give the same features as their files
    pil = [Image.open(p) for p in paths[:3]]
    np.testing.assert_allclose(FeatureExtractor(ckpt, batch_size=2)(pil), feats[:3], atol=1e-5)


def test_extract_cli_writes_features_and_names(extract_script, tiny_run, tiny_root, tmp_path, capsys):
    images = tmp_path / "images"
    (images / "b").mkdir(parents=True)
    src = sorted(query_folder(tiny_root).glob("*.jpg"))[:3]
    Image.open(src[0]).save(images / "b" / "x.png")
    (images / "a.jpg").write_bytes(src[1].read_bytes())
    (images / "C.JPEG").write_bytes(src[2].read_bytes())
    (images / "._a.jpg").write_bytes(b"macOS metadata")  # hidden: skipped
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "out" / "feats.npy"
    ckpt = str(tiny_run / "model_best.pth.tar")
    assert extract_script.main(["--checkpoint", ckpt, "--images", str(images), "--out", str(out)]) == 0
    names = out.with_suffix(".txt").read_text().splitlines()
    assert names == ["C.JPEG", "a.jpg", "b/x.png"]
    feats = np.load(out)
    assert feats.dtype == np.float32 and feats.shape == (3, 512)
    np.testing.assert_allclose(feats, FeatureExtractor(ckpt)([images / n for n in names]), atol=1e-6)
    capsys.readouterr()

    # bad input: one error line, exit 2, nothing written over
    before = out.read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.jpg").write_bytes(src[0].read_bytes()[:200])
    cases = [(["--checkpoint", str(tmp_path / "none.pth.tar"), "--images", str(images)], "does not exist"),
             (["--checkpoint", ckpt, "--images", str(tmp_path / "nowhere")], "does not exist"),
             (["--checkpoint", ckpt, "--images", str(empty)], "no image"),
             (["--checkpoint", ckpt, "--images", str(broken)], "cannot read image")]
    if not torch.cuda.is_available():
        cases.append((["--checkpoint", ckpt, "--images", str(images), "--device", "cuda"], "no CUDA device"))
    for argv, words in cases:
        assert extract_script.main([*argv, "--out", str(out)]) == 2
        assert words in one_error_line(capsys.readouterr().err)
        assert out.read_bytes() == before and not list(out.parent.glob(".*.tmp"))
    with pytest.raises(SystemExit) as e:
        extract_script.main(["--help"])
    assert e.value.code == 0


def test_export_onnx_equals_pytorch(export_script, tiny_run, tiny_root, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    ckpt = str(tiny_run / "model_best.pth.tar")
    out = tmp_path / "cdsm.onnx"
    # the paper's input size (the tiny model was trained at 32 x 16; the network takes any size)
    argv = ["--checkpoint", ckpt, "--out", str(out), "--height", "256", "--width", "128"]
    assert export_script.main(argv) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (meta["height"], meta["width"], meta["feature_dim"]) == ("256", "128", "512")
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(meta["std"]) == [0.229, 0.224, 0.225]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["features"]
    extractor = FeatureExtractor(ckpt, height=256, width=128)
    paths = sorted(query_folder(tiny_root).glob("*.jpg"))[:3]
    x = torch.stack([extractor.preprocess(p) for p in paths]).numpy()
    assert x.shape == (3, 3, 256, 128)
    got = session.run(["features"], {"images": x})[0]
    np.testing.assert_allclose(got, extractor(paths), atol=1e-4)
    assert session.run(["features"], {"images": x[:1]})[0].shape == (1, 512)  # dynamic batch
    assert session.run(["features"], {"images": np.concatenate([x, x])})[0].shape == (6, 512)
    # a missing checkpoint is one line, nothing written
    capsys.readouterr()
    missing = str(tmp_path / "none.pth.tar")
    assert export_script.main(["--checkpoint", missing, "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "x.onnx").exists()


def test_visrank_writes_ranked_lists(test_script, tiny_run, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="cdsm")
    run = tmp_path / "run"
    rc = test_script.main(["--checkpoint", str(tiny_run / "model_best.pth.tar"), "-j", "0", "--rerank",
                           "--visrank", "3", "--visrank-queries", "2", "--logs-dir", str(run)])
    assert rc == 0
    assert "re-ranked distances" in printed(capsys, caplog)
    jpgs = sorted(p.name for p in (run / "visrank").glob("*.jpg"))
    assert "grid.jpg" in jpgs and len(jpgs) == 3
    for name in jpgs:
        with Image.open(run / "visrank" / name) as img:
            img.load()
    assert test_script.main(["--checkpoint", str(tiny_run / "model_best.pth.tar"), "--visrank", "-1"]) == 2
    assert "must be >= 0" in one_error_line(capsys.readouterr().err)


def test_tensorboard_tags_shared_by_the_five_methods(tiny_run):
    # TensorBoard's TensorFlow-free stub, as the run's writer uses it (cdsm.utils.logging)
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tiny_run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    shared = {"eval/mAP", "eval/rank1", "train/loss", "train/lr", "cluster/clusters", "cluster/outliers",
              "time/epoch"}
    own = {"train/center", "train/marginal", "cluster/reliable", "time/extract", "time/cluster", "time/train"}
    assert shared | own <= tags, sorted(tags)
    for tag in shared | own:
        assert all(math.isfinite(e.value) for e in acc.Scalars(tag))
    assert [e.step for e in acc.Scalars("eval/mAP")] == [0, 1]  # the initial model, then epoch 1
