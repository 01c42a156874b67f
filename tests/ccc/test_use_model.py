"""Using a trained 3C model (issue 19): ccc.FeatureExtractor and examples/extract.py, the ONNX
export (examples/export.py, checked with onnxruntime), test.py from the checkpoint alone with
--visrank / --rerank, the self-contained checkpoints ("config") and the TensorBoard tags shared by
the five methods. Everything runs on the session's one tiny trained run (conftest.tiny_run)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import CCC_DIR, load_script
from PIL import Image

from ccc import FeatureExtractor, datasets, list_inputs

TAGS = ("eval/mAP", "eval/rank1", "train/loss", "train/lr", "cluster/clusters", "cluster/outliers",
        "time/epoch")


@pytest.fixture(scope="module")
def extract_script():
    return load_script("extract")


@pytest.fixture(scope="module")
def export_script():
    return load_script("export")


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.slow
def test_checkpoints_carry_the_resolved_config(tiny_run):
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    for name in ("model_best.pth.tar", "checkpoint.pth.tar"):
        ckpt = torch.load(tiny_run / name, weights_only=True)
        assert ckpt["config"] == config, name
        cfg = ckpt["config"]
        assert (cfg["arch"], cfg["height"], cfg["width"]) == ("resnet18", 32, 16)


@pytest.mark.slow
def test_api_features_equal_those_test_py_ranks(tiny_run, tiny_root, test_script, monkeypatch, tmp_path):
    """test.py with nothing but --checkpoint (dataset, root, model, size from the checkpoint)
    evaluates the run's best model to its reported mAP; the query features it ranks equal the
    API's for the same images, given as a folder, as paths and as PIL images."""
    ranked = []
    real = test_script.extract_features

    def spy(model, loader, *a, **kw):
        out = real(model, loader, *a, **kw)
        ranked.append(out.numpy())
        return out

    monkeypatch.setattr(test_script, "extract_features", spy)
    ckpt = tiny_run / "model_best.pth.tar"
    assert test_script.main(["--checkpoint", str(ckpt), "--num-workers", "0", "--output",
                             str(tmp_path / "m.json")]) == 0
    record = json.loads((tiny_run / "results.json").read_text())
    assert json.loads((tmp_path / "m.json").read_text())["mAP"] == pytest.approx(record["common"]["mAP"],
                                                                                 abs=1e-6)
    query = datasets.create("market1501", str(tiny_root)).query
    paths = [p for p, _, _ in query]
    fx = FeatureExtractor(ckpt, batch_size=7)
    assert (fx.arch, fx.height, fx.width) == ("resnet18", 32, 16)
    by_paths = fx(paths)
    assert by_paths.dtype == np.float32 and by_paths.shape == ranked[0].shape
    np.testing.assert_allclose(by_paths, ranked[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.linalg.norm(by_paths, axis=1), 1.0, atol=1e-5)
    folder = tiny_root / "Market-1501-v15.09.15" / "query"
    items, names = list_inputs(folder)
    order = [paths.index(str(p)) for p in items]
    assert names == sorted(names) and sorted(order) == list(range(len(paths)))
    np.testing.assert_allclose(fx(folder), ranked[0][order], atol=1e-5, rtol=0)
    np.testing.assert_allclose(fx([Image.open(p) for p in paths[:3]]), ranked[0][:3], atol=1e-5, rtol=0)


def test_list_inputs_order_and_hidden_files(tmp_path):
    for rel in ("b/2.png", "b/1.JPG", "a.jpeg", "c.bmp", "._a.jpg", ".hidden/x.jpg", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 8)).save(tmp_path / rel, format="PNG") if rel != "notes.txt" else \
            (tmp_path / rel).write_text("x")
    items, names = list_inputs(tmp_path)
    assert names == ["a.jpeg", "b/1.JPG", "b/2.png", "c.bmp"]
    assert items == [tmp_path / n for n in names]


@pytest.mark.slow
def test_extract_cli_writes_features_and_names(tiny_run, tiny_root, extract_script, tmp_path):
    folder = tiny_root / "Market-1501-v15.09.15" / "query"
    out = tmp_path / "out" / "feats.npy"
    assert extract_script.main(["--checkpoint", str(tiny_run / "model_best.pth.tar"), "--images",
                                str(folder), "--out", str(out), "--batch-size", "5"]) == 0
    feats = np.load(out)
    names = out.with_suffix(".txt").read_text().splitlines()
    assert names == list_inputs(folder)[1] and feats.shape == (len(names), 512) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, FeatureExtractor(tiny_run / "model_best.pth.tar")(folder), atol=1e-6)
    assert not list(out.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_extract_cli_bad_inputs_are_one_line_and_write_nothing(tiny_run, tiny_root, extract_script,
                                                               tmp_path, capsys):
    ckpt = str(tiny_run / "model_best.pth.tar")
    out = tmp_path / "feats.npy"
    out.write_bytes(b"previous")
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    shutil.copytree(tiny_root / "Market-1501-v15.09.15" / "query", bad)
    victim = sorted(bad.glob("*.jpg"))[2]
    victim.write_bytes(b"not a jpeg")
    cases = ((["--checkpoint", str(tmp_path / "nope.pth.tar"), "--images", str(bad)], "does not exist"),
             (["--checkpoint", ckpt, "--images", str(tmp_path / "nowhere")], "does not exist"),
             (["--checkpoint", ckpt, "--images", str(empty)], "no images"),
             (["--checkpoint", ckpt, "--images", str(bad)], f"cannot read image {victim}"),
             (["--checkpoint", str(tmp_path / "feats.npy"), "--images", str(bad)], "cannot read checkpoint"))
    for args, message in cases:
        assert extract_script.main(args + ["--out", str(out)]) == 2
        assert message in error_line(capsys)
        assert out.read_bytes() == b"previous" and not out.with_suffix(".txt").exists()


@pytest.mark.slow
def test_export_onnx_equals_pytorch_at_paper_size(tiny_run, tiny_root, export_script, tmp_path, capsys):
    import onnx
    import onnxruntime as ort
    ckpt = tiny_run / "model_best.pth.tar"
    out = tmp_path / "model.onnx"
    assert export_script.main(["--checkpoint", str(ckpt), "--out", str(out), "--height", "256", "--width",
                               "128"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (meta["height"], meta["width"]) == ("256", "128")
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(meta["std"]) == [0.229, 0.224, 0.225]
    fx = FeatureExtractor(ckpt, height=256, width=128)
    paths = [p for p, _, _ in datasets.create("market1501", str(tiny_root)).query[:3]]
    images = torch.stack([fx.preprocess(p) for p in paths]).numpy()
    assert images.shape == (3, 3, 256, 128)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["features"]
    got = session.run(["features"], {"images": images})[0]
    np.testing.assert_allclose(got, fx(paths), atol=1e-4, rtol=0)
    one = session.run(["features"], {"images": images[1:2]})[0]        # another batch size
    np.testing.assert_allclose(one, got[1:2], atol=1e-4, rtol=0)
    # a missing checkpoint: one line, the previous file untouched
    before = out.read_bytes()
    capsys.readouterr()
    assert export_script.main(["--checkpoint", str(tmp_path / "nope.pth.tar"), "--out", str(out)]) == 2
    assert "does not exist" in error_line(capsys) and out.read_bytes() == before


@pytest.mark.slow
def test_visrank_and_rerank_from_the_checkpoint_alone(tiny_run, test_script, tmp_path):
    ckpt = str(tiny_run / "model_best.pth.tar")
    assert test_script.main(["--checkpoint", ckpt, "--num-workers", "0", "--visrank", "4",
                             "--visrank-queries", "3", "--logs-dir", str(tmp_path / "run"), "--output",
                             str(tmp_path / "plain.json")]) == 0
    files = sorted(p.name for p in (tmp_path / "run" / "visrank").iterdir())
    assert len(files) == 4 and "grid.jpg" in files
    for name in files:
        with Image.open(tmp_path / "run" / "visrank" / name) as img:
            img.verify()
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert test_script.main(["--checkpoint", ckpt, "--num-workers", "0", "--rerank", "--visrank", "2",
                             "--visrank-queries", "0", "--logs-dir", str(tmp_path / "rr"), "--output",
                             str(tmp_path / "rr.json")]) == 0
    assert json.loads((tmp_path / "rr.json").read_text())["mAP"] != plain["mAP"]    # re-ranked
    n_query = len(list((tmp_path / "rr" / "visrank").glob("*.jpg"))) - 1          # every query
    root = json.loads((tiny_run / "results.json").read_text())["config"]["root_dir"]
    assert n_query == len(datasets.create("market1501", root).query)


@pytest.mark.slow
def test_tensorboard_has_the_shared_tags(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tiny_run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert set(TAGS) <= tags, sorted(tags)
    for tag in TAGS:
        values = [e.value for e in acc.Scalars(tag)]
        assert values and all(math.isfinite(v) for v in values), tag
    assert len(acc.Scalars("time/epoch")) == 3 and min(e.value for e in acc.Scalars("time/epoch")) > 0
    assert acc.Scalars("eval/mAP")[0].step == 0           # the initial model, then one per evaluated epoch


def test_help_exits_0():
    """test.py, extract.py and export.py --help: exit 0 (one interpreter for the three)."""
    examples = str(CCC_DIR / "examples")
    code = ("import runpy, sys\n"
            f"sys.path.insert(0, {examples!r})\n"
            "for name in ('test', 'extract', 'export'):\n"
            "    sys.argv = [name + '.py', '--help']\n"
            "    try:\n"
            f"        runpy.run_path({examples!r} + '/' + name + '.py', run_name='__main__')\n"
            "    except SystemExit as exc:\n"
            "        print(name, 'exit', exc.code)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    for name in ("test", "extract", "export"):
        assert f"{name} exit 0" in p.stdout, p.stdout + p.stderr
    assert p.stdout.count("--checkpoint") >= 3


def test_a_device_this_machine_lacks_is_one_clear_error():
    import torch

    from ccc.errors import InputError
    from ccc.extractor import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device is available here"):
            resolve_device("cuda:0")
    with pytest.raises(InputError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")
