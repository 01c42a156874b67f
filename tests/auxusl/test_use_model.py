"""Issue 19 and 20 (item 3) for AuxUSL: a checkpoint used on its own (FeatureExtractor,
examples/extract.py, examples/export.py, examples/test.py with --rerank / --visrank), the
TensorBoard tags shared by the five methods, and the fused Adam against the for-loop one."""

import json

import numpy as np
import pytest
import torch
from conftest import load_script
from PIL import Image
from test_train_cli import run_main, tiny

from auxusl import FeatureExtractor, engine
from auxusl.config import setup_cfg
from auxusl.data import FrameReader
from auxusl.evaluation import Evaluator
from auxusl.extractor import list_inputs
from auxusl.optim import build_optimizer
from auxusl.utils import copy_weights, load_checkpoint


@pytest.fixture(scope="module")
def tiny_run(train_script, small_root, tmp_path_factory):
    """One epoch of the tiny DukeV run (no auxiliary information): its run folder."""
    logs = tmp_path_factory.mktemp("use") / "run"
    assert train_script.main(tiny(small_root, logs, "OPTIM.EPOCHS", "1", aux=False)) == 0
    return logs


def error_line(capsys):
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_checkpoints_carry_the_configuration_and_test_py_needs_nothing_else(tiny_run, test_script, capsys):
    best = tiny_run / "model_mAP_best.pth.tar"
    for f in (best, tiny_run / "checkpoint_new.pth.tar"):
        cfg = load_checkpoint(f)["config"]
        assert isinstance(cfg, dict) and cfg["MODEL"]["ARCH"] == "resnet18bnn"
        assert cfg["INPUT"]["SIZE_TEST"] == [32, 16]
    ev = tiny_run.parent / "eval"
    rc, out, err = run_main(test_script, ["--checkpoint", str(best), "--logs-dir", str(ev), "--rerank",
                                          "--visrank", "3", "--visrank-queries", "2"], capsys)
    assert rc == 0, err
    got = json.loads((ev / "eval_results.json").read_text())
    rec = json.loads((tiny_run / "results.json").read_text())
    assert got["mAP"] == pytest.approx(rec["common"]["mAP"], abs=1e-6)  # same numbers as the run
    assert "rerank" in got and 0 <= got["rerank"]["mAP"] <= 100
    shots = sorted(p.name for p in (ev / "visrank").iterdir())
    assert len(shots) == 3 and "grid.jpg" in shots
    with Image.open(ev / "visrank" / "grid.jpg") as im:
        assert im.width > 3 * 16 and im.height > 32


@pytest.mark.slow
def test_test_py_in_the_run_folder_leaves_the_run_alone(tiny_run, test_script, capsys):
    """By default test.py writes beside the checkpoint: the run's config.yaml, checkpoints and
    results stay byte-identical, and its own flags work after KEY VALUE pairs (as the wrapper's
    --eval CKPT -- --visrank K passes them)."""
    best = tiny_run / "model_mAP_best.pth.tar"
    kept = {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file() and p.name != "log.txt"}
    rc, out, err = run_main(test_script, ["--checkpoint", str(best), "TEST.PRINT_PERIOD", "50",
                                          "--visrank", "2", "--visrank-queries", "1"], capsys)
    assert rc == 0, err
    assert (tiny_run / "eval_results.json").exists() and (tiny_run / "eval_config.yaml").exists()
    assert len(list((tiny_run / "visrank").glob("*.jpg"))) == 2
    for name, data in kept.items():
        assert (tiny_run / name).read_bytes() == data, name


def test_test_py_help_exits_0_and_a_missing_checkpoint_is_one_line(test_script, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        test_script.main(["--help"])
    assert exc.value.code == 0
    assert "--visrank" in capsys.readouterr().out
    assert test_script.main(["--checkpoint", str(tmp_path / "none.pth.tar")]) == 2
    assert len(error_line(capsys)) == 1


@pytest.mark.slow
def test_extractor_equals_the_features_test_py_ranks(tiny_run, small_root):
    best = tiny_run / "model_mAP_best.pth.tar"
    # what examples/test.py ranks: the engine's model and the Evaluator's features
    cfg = setup_cfg(None, base=engine.stored_config(load_checkpoint(best)))
    dataset = engine.build_dataset(cfg, verbose=False)
    _, test_tf = engine.build_transforms(cfg)
    _, teacher = engine.build_student_and_teacher(cfg, len(dataset.train), "cpu", pretrained="none")
    copy_weights(teacher, load_checkpoint(best)["state_dict"], best)
    ranked, _ = Evaluator(cfg, dataset, test_tf, FrameReader(), "cpu", False).features(teacher, dataset.query)

    tracklets = [list(paths) for paths, _, _ in dataset.query]
    raw = FeatureExtractor(best, normalize=False, batch_size=7)(tracklets)
    assert raw.dtype == np.float32 and np.abs(raw - ranked).max() < 1e-5
    unit = FeatureExtractor(best)(tracklets)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-5)
    assert np.abs(unit - ranked / np.linalg.norm(ranked, axis=1, keepdims=True)).max() < 1e-5
    # PIL images give the same as their paths
    pil = FeatureExtractor(best)([[Image.open(p) for p in tracklets[0]]])
    assert np.abs(pil[0] - unit[0]).max() < 1e-5


@pytest.mark.slow
def test_extract_cli_writes_features_and_names(tiny_run, small_root, tmp_path, capsys):
    extract = load_script("extract")
    best = tiny_run / "model_mAP_best.pth.tar"
    query = small_root / "DukeMTMC-VideoReID" / "query"
    out = tmp_path / "f" / "feats.npy"
    (tmp_path / "f").mkdir()
    assert extract.main(["--checkpoint", str(best), "--images", str(query), "--out", str(out)]) == 0
    feats = np.load(out)
    names = out.with_suffix(".txt").read_text().splitlines()
    tracklets, expected = list_inputs(query)
    assert names == expected and feats.shape == (len(names), 512) and feats.dtype == np.float32
    assert np.abs(feats - FeatureExtractor(best)(tracklets)).max() < 1e-6
    capsys.readouterr()
    # bad input: one error line, exit 2, nothing written over
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad" / "0001"
    bad.mkdir(parents=True)
    (bad / "f.jpg").write_bytes(b"not a jpeg")
    before = out.read_bytes()
    for args in (["--checkpoint", str(tmp_path / "none.pth.tar"), "--images", str(query)],
                 ["--checkpoint", str(best), "--images", str(empty)],
                 ["--checkpoint", str(best), "--images", str(tmp_path / "nowhere")],
                 ["--checkpoint", str(best), "--images", str(tmp_path / "bad")]):
        assert extract.main([*args, "--out", str(out)]) == 2, args
        assert len(error_line(capsys)) == 1, args
    assert out.read_bytes() == before


@pytest.mark.slow
def test_export_onnx_equals_pytorch(tiny_run, tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    export = load_script("export")
    best = tiny_run / "model_mAP_best.pth.tar"
    out = tmp_path / "model.onnx"
    size = ["--height", "256", "--width", "128"]
    assert export.main(["--checkpoint", str(best), "--out", str(out), *size]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert (meta["height"], meta["width"]) == ("256", "128") and "mean" in meta and "std" in meta
    assert "mean over its frames" in meta["pooling"]
    fx = FeatureExtractor(best)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 256, 128, generator=torch.Generator().manual_seed(0))
    (got,) = sess.run(["features"], {"images": x.numpy()})
    with torch.no_grad():
        _, bn = fx.model.frame_features(x)
        want = torch.nn.functional.normalize(bn).numpy()
    assert got.shape == (3, 512) and np.abs(got - want).max() < 1e-4
    (one,) = sess.run(["features"], {"images": x[:1].numpy()})  # another batch size runs
    assert np.abs(one - want[:1]).max() < 1e-4
    # the default size is the checkpoint's test size
    assert export.main(["--checkpoint", str(best), "--out", str(tmp_path / "m2.onnx")]) == 0
    meta2 = {p.key: p.value for p in onnx.load(tmp_path / "m2.onnx").metadata_props}
    assert (meta2["height"], meta2["width"]) == ("32", "16")
    assert export.main(["--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "m3.onnx")]) == 2
    assert len(error_line(capsys)) == 1 and not (tmp_path / "m3.onnx").exists()


@pytest.mark.slow
def test_tensorboard_tags_shared_by_the_five_methods(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("eval/mAP", "eval/rank1", "train/loss", "train/lr", "cluster/clusters", "cluster/outliers",
                "time/epoch", "train/loss_ce", "train/loss_tri", "train/loss_ce_soft", "train/loss_tri_soft"):
        assert tag in tags, (tag, sorted(tags))
        assert all(np.isfinite(e.value) for e in acc.Scalars(tag)), tag


@pytest.mark.parametrize("opt", ["adam", "amsgrad"])
def test_fused_adam_is_the_for_loop_update(opt):
    cfg = setup_cfg(None, ["OPTIM.OPT", opt])
    models, params = {}, {}
    for impl in ("for-loop", "fused"):
        torch.manual_seed(0)
        # the model's kinds of tensors (conv, BN, a frozen BN bias as the neck's, classifier), small
        models[impl] = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16),
                                           torch.nn.BatchNorm1d(16), torch.nn.Linear(16, 8, bias=False))
        models[impl][2].bias.requires_grad_(False)
        start = [p.detach().clone() for p in models[impl].parameters()]
        optimizer = build_optimizer(cfg.OPTIM, models[impl], impl)
        assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["initial_lr"] == cfg.OPTIM.LR
        assert bool(optimizer.param_groups[0]["fused"]) == (impl == "fused")
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            for p in models[impl].parameters():
                p.grad = torch.randn(p.shape, generator=gen) * 1e-2 if p.requires_grad else None
            optimizer.step()
        params[impl] = [p.detach().clone() for p in models[impl].parameters()]
    worst = max((a - b).abs().max().item() for a, b in zip(params["for-loop"], params["fused"]))
    moved = max((a - b).abs().max().item() for a, b in zip(params["fused"], start))
    assert worst < 1e-6 and moved > 1e-3
    # the engine's choice on this machine's CPU: the fused kernel
    auto = build_optimizer(cfg.OPTIM, models["fused"])
    assert auto.param_groups[0]["fused"]
