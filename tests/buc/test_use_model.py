"""Using a trained BUC model (issue 19): FeatureExtractor, extract.py, export.py, test.py from the
checkpoint alone with --rerank/--visrank, the common TensorBoard tags; and --eval-every (issue 20),
which must not change training. One tiny trained run per session (conftest.tiny_trained, about
8 s); the tests that use it are marked slow."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, TINY_RUN, tiny_argv
from PIL import Image

import common_eval
from buc import FeatureExtractor, list_inputs, models
from buc.utils.serialization import load_checkpoint, save_checkpoint


def load_script(name: str):
    """examples/<name>.py as a module (test.py's name clashes with python's own ``test``)."""
    spec = importlib.util.spec_from_file_location(f"buc_{name}_py", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_py, extract_py, export_py = load_script("test"), load_script("extract"), load_script("export")


def features_of_test_py(argv):
    """The query/gallery features examples/test.py ranks for this command line."""
    p = test_py.build_parser()
    args = p.parse_args([*argv, "--no-progress"])
    bu, dataset = test_py.prepare(p, args)
    return (*test_py.query_gallery_features(bu, dataset), dataset)


# ------------------------------------------------------------------ features
@pytest.mark.slow
def test_extractor_equals_the_features_test_py_ranks(tiny_trained):
    best = tiny_trained / "model_best.pth.tar"
    qf, _, dataset = features_of_test_py(["--checkpoint", str(best)])       # the checkpoint alone
    paths = [os.path.join(dataset.images_dir, r[0][0]) for r in dataset.query]
    fx = FeatureExtractor(best, batch_size=5)
    feats = fx(paths)
    assert feats.dtype == np.float32 and feats.shape == qf.shape == (len(paths), 512)
    np.testing.assert_allclose(feats, qf, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    pil = fx([Image.open(p) for p in paths[:3]])                          # PIL images: the same
    np.testing.assert_allclose(pil, qf[:3], atol=1e-5)
    assert fx.settings["height"] == 64 and not fx.is_video               # from the stored config


def test_tracklets_are_pooled_as_the_evaluator_pools_them(tiny_root, tmp_path):
    """Video: mean pool5 over the frames, then L2; a folder of tracklet folders gives the same."""
    torch.manual_seed(0)
    model = models.create("resnet18", pretrained="none", embedding_size=16)
    config = {"dataset": "DukeMTMC-VideoReID", "data_dir": str(tiny_root), "arch": "resnet18", "fea": 16,
              "height": 64, "width": 32, "max_frames": 900, "eval_batch_size": 4}
    ckpt = save_checkpoint({"model": model.state_dict(), "config": config}, tmp_path / "video.pth.tar")
    qf, _, dataset = features_of_test_py(["--checkpoint", str(ckpt)])
    tracklets = [[os.path.join(dataset.images_dir, f) for f in r[0]] for r in dataset.query]
    assert max(len(t) for t in tracklets) > 1
    fx = FeatureExtractor(ckpt, batch_size=3)                              # frames split over batches
    assert fx.is_video
    np.testing.assert_allclose(fx(tracklets), qf, atol=1e-5)
    folder = tmp_path / "tracklets"
    for i, frames in enumerate(tracklets[:3]):
        (folder / f"t{i}").mkdir(parents=True)
        for f in frames:
            shutil.copy(f, folder / f"t{i}")
    items, names = list_inputs(folder, video=True)
    assert names == ["t0", "t1", "t2"] and [len(t) for t in items] == [len(t) for t in tracklets[:3]]
    np.testing.assert_allclose(fx(str(folder)), qf[:3], atol=1e-5)


def test_list_inputs_is_recursive_sorted_and_skips_hidden_files(tmp_path):
    img = Image.new("RGB", (8, 16))
    for rel in ("b.jpg", "a/c.PNG", "a/b.bmp", "._a.jpg", ".hidden/x.jpg", "z.txt", "d.jpeg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("txt"):
            (tmp_path / rel).write_text("x")
        else:
            img.save(tmp_path / rel, format="PNG")
    items, names = list_inputs(tmp_path)
    assert names == ["a/b.bmp", "a/c.PNG", "b.jpg", "d.jpeg"]
    assert items == [str(tmp_path / n) for n in names]


def test_an_original_open_reid_checkpoint_loads_with_overrides(tmp_path):
    torch.manual_seed(0)
    model = models.create("resnet18", pretrained="none", embedding_size=8)
    state = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3,
             "best_top1": np.float64(0.5)}
    torch.save(state, tmp_path / "legacy.pth.tar", _use_new_zipfile_serialization=False)
    fx = FeatureExtractor(tmp_path / "legacy.pth.tar", arch="resnet18", fea=8, height=64, width=32)
    x = torch.rand(2, 3, 64, 32)
    imgs = [Image.fromarray((x[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)) for i in range(2)]
    with torch.no_grad():
        _, ref = model.eval()(torch.stack([fx.transform(im) for im in imgs])[:, None])
    np.testing.assert_allclose(fx(imgs), ref.numpy(), atol=1e-5)


# ------------------------------------------------------------------ extract.py
@pytest.mark.slow
def test_extract_cli_writes_features_and_names(tiny_trained, tiny_root, tmp_path, capsys):
    query = tiny_root / "Market-1501-v15.09.15" / "query"
    out = tmp_path / "out" / "feats.npy"
    assert extract_py.main(["--checkpoint", str(tiny_trained / "model_best.pth.tar"), "--images", str(query),
                            "--out", str(out), "--batch-size", "7"]) == 0
    feats = np.load(out)
    names = out.with_suffix(".txt").read_text().splitlines()
    expected = sorted(p.name for p in query.glob("*.jpg"))
    assert names == expected and feats.shape == (len(expected), 512) and feats.dtype == np.float32
    fx = FeatureExtractor(tiny_trained / "model_best.pth.tar")
    np.testing.assert_allclose(feats, fx([str(query / n) for n in names]), atol=1e-5)
    assert "in" in capsys.readouterr().out


def untrained_checkpoint(path):
    torch.manual_seed(0)
    model = models.create("resnet18", pretrained="none", embedding_size=16)
    config = {"dataset": "market1501", "arch": "resnet18", "fea": 16, "height": 64, "width": 32}
    return save_checkpoint({"model": model.state_dict(), "config": config}, path)


def test_extract_cli_bad_inputs_are_one_error_line(tmp_path, capsys):
    ckpt = str(untrained_checkpoint(tmp_path / "model_best.pth.tar"))
    out = tmp_path / "feats.npy"
    out.write_bytes(b"previous")
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "0001_c1s1_000001_00.jpg").write_bytes(b"not a jpeg")
    cases = {"does not exist": ["--checkpoint", str(tmp_path / "nope.pth.tar"), "--images", str(empty)],
             "no such folder": ["--checkpoint", ckpt, "--images", str(tmp_path / "missing")],
             "no images": ["--checkpoint", ckpt, "--images", str(empty)],
             "cannot decode image": ["--checkpoint", ckpt, "--images", str(bad)]}
    for needle, argv in cases.items():
        assert extract_py.main([*argv, "--out", str(out)]) == 2, needle
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err
    assert out.read_bytes() == b"previous" and not out.with_suffix(".txt").exists()


# ------------------------------------------------------------------ export.py
@pytest.mark.slow
def test_export_onnx_equals_pytorch_at_the_paper_size(tiny_trained, tmp_path):
    import onnx
    import onnxruntime as ort

    out = tmp_path / "buc.onnx"
    best = tiny_trained / "model_best.pth.tar"
    assert export_py.main(["--checkpoint", str(best), "--out", str(out), "--height", "256",
                           "--width", "128"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert (meta["height"], meta["width"]) == ("256", "128")
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]
    assert json.loads(meta["std"]) == [0.229, 0.224, 0.225]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["features", "pool5"]
    fx = FeatureExtractor(best, height=256, width=128)
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (300, 110, 3), dtype=np.uint8)) for _ in range(3)]
    batch = torch.stack([fx.transform(im) for im in imgs]).numpy()
    features, pool5 = session.run(None, {"images": batch})
    np.testing.assert_allclose(features, fx(imgs), atol=1e-4)                # what the API returns
    np.testing.assert_allclose(pool5, fx.pool5(torch.from_numpy(batch)).numpy(), rtol=1e-4, atol=1e-4)
    one = session.run(["features"], {"images": batch[1:2]})[0]                # another batch size
    np.testing.assert_allclose(one, features[1:2], atol=1e-4)
    # a tracklet: normalize(mean of the frames' pool5) = FeatureExtractor on the frames
    pooled = pool5.mean(0) / np.linalg.norm(pool5.mean(0))
    video = FeatureExtractor(best, height=256, width=128, video=True)
    np.testing.assert_allclose(pooled, video([imgs])[0], atol=1e-4)
    assert export_py.main(["--checkpoint", str(best), "--out", str(tmp_path / "x.pt")]) == 2


# ------------------------------------------------------------------ test.py
def test_help_exits_0(capsys):
    for module in (test_py, extract_py, export_py):
        with pytest.raises(SystemExit) as exc:
            module.main(["--help"])
        assert exc.value.code == 0
    assert "--visrank" in capsys.readouterr().out


@pytest.mark.slow
def test_test_py_from_the_checkpoint_alone_rerank_and_visrank(tiny_trained, tmp_path, monkeypatch):
    best = tiny_trained / "model_best.pth.tar"
    res = json.loads((tiny_trained / "results.json").read_text())
    argv = ["--checkpoint", str(best), "--no-progress"]                  # the checkpoint alone
    assert test_py.main([*argv, "--output", str(tmp_path / "a.json")]) == 0
    plain = json.loads((tmp_path / "a.json").read_text())
    assert plain["native"]["mAP"] == pytest.approx(res["native"]["mAP"], abs=1e-6)

    drawn = {}
    real = test_py.visualize_ranked_results

    def spy(distmat, query, gallery, out_dir, **kw):   # records what is drawn, then draws it
        drawn.update(distmat=np.array(distmat), query=query, gallery=gallery)
        return real(distmat, query, gallery, out_dir, **kw)

    monkeypatch.setattr(test_py, "visualize_ranked_results", spy)
    logs = tmp_path / "run"
    assert test_py.main([*argv, "--output", str(tmp_path / "b.json"), "--rerank", "--visrank", "3",
                         "--visrank-queries", "4", "--logs-dir", str(logs)]) == 0
    reranked = json.loads((tmp_path / "b.json").read_text())
    qf, gf, dataset = features_of_test_py(["--checkpoint", str(best)])
    dist = common_eval.k_reciprocal_rerank(query_features=qf, gallery_features=gf, metric="sqeuclidean",
                                           k1=20, k2=6, lambda_value=0.3)
    q = np.array([r[1] for r in dataset.query]), np.array([r[2] for r in dataset.query])
    g = np.array([r[1] for r in dataset.gallery]), np.array([r[2] for r in dataset.gallery])
    expected = common_eval.evaluate(dist, q[0], g[0], q[1], g[1], ap="stepwise", max_rank=len(g[0]))
    assert reranked["rerank"] and reranked["common"]["mAP"] == pytest.approx(expected.mAP * 100, abs=1e-6)
    assert reranked["common"]["mAP"] != plain["common"]["mAP"]
    np.testing.assert_allclose(drawn["distmat"], dist[:4], rtol=1e-6)          # the re-ranked distances
    assert len(drawn["query"]) == 4 and len(drawn["gallery"]) == len(dataset.gallery)
    assert drawn["query"][0][0] == os.path.join(dataset.images_dir, dataset.query[0][0][0])
    files = sorted(p.name for p in (logs / "visrank").iterdir())
    assert "grid.jpg" in files and len(files) == 5
    for f in files:
        Image.open(logs / "visrank" / f).verify()


# ------------------------------------------------------------------ checkpoints and TensorBoard
@pytest.mark.slow
def test_checkpoints_carry_the_resolved_config(tiny_root, tiny_trained):
    from options import parse_args, resolved_config

    expected = resolved_config(vars(parse_args(tiny_argv(tiny_root, tiny_trained, *TINY_RUN))))
    for name in ("model_best.pth.tar", "checkpoint.pth.tar"):
        config = load_checkpoint(tiny_trained / name)["config"]
        assert config["dataset"] == "market1501" and config["arch"] == "resnet18" and config["fea"] == 64
        assert (config["height"], config["width"], config["eval_every"]) == (64, 32, 1)
        assert all(v is None or isinstance(v, (str, int, float, bool, list)) for v in config.values())
        assert {k: config[k] for k in ("later_steps", "frames_per_video", "bn_slices", "fixed_layer")} == \
            {k: expected[k] for k in ("later_steps", "frames_per_video", "bn_slices", "fixed_layer")}


@pytest.mark.slow
def test_tensorboard_tags_are_the_common_ones(tiny_trained):
    from buc.utils.tensorboard import summary_writer
    summary_writer  # noqa: B018  (registers tensorboard's no-TensorFlow switch before the import)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_trained), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    common = {"eval/mAP", "eval/rank1", "train/loss", "train/lr", "cluster/clusters", "cluster/outliers",
              "time/epoch"}
    assert common <= tags, common - tags
    assert {"buc/merge_purity", "buc/prec", "buc/mAP_native", "time/evaluate", "time/merge"} <= tags
    assert not any(t.startswith("test/") for t in tags)
    for tag in common:
        assert all(math.isfinite(e.value) for e in acc.Scalars(tag)), tag
    res = json.loads((tiny_trained / "results.json").read_text())
    maps = [e.value for e in acc.Scalars("eval/mAP")]
    assert maps[0] == pytest.approx(res["initial"]["mAP"], abs=1e-4)            # step-wise, in %
    assert maps[-1] == pytest.approx(res["last"]["mAP"], abs=1e-4)
    assert [e.value for e in acc.Scalars("cluster/clusters")] == [h["clusters"] for h in res["history"]]


# ------------------------------------------------------------------ --eval-every (issue 20)
@pytest.mark.slow
def test_eval_every_changes_no_training_and_selects_among_evaluated_steps(tiny_root, tiny_trained, tmp_path):
    from train import main

    logs = tmp_path / "every2"
    assert main(tiny_argv(tiny_root, logs, *TINY_RUN, "--eval-every", "2")) == 0
    a, b = load_checkpoint(tiny_trained / "checkpoint.pth.tar"), load_checkpoint(logs / "checkpoint.pth.tar")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["memory"], b["memory"]) and np.array_equal(a["labels"], b["labels"])
    res = json.loads((logs / "results.json").read_text())
    full = json.loads((tiny_trained / "results.json").read_text())
    h = res["history"]
    assert "native" not in h[0] and h[1]["native"] == full["history"][1]["native"]   # step 1: the last
    assert res["selected_step"] == 1 and res["last"] == full["last"]
    assert load_checkpoint(logs / "model_best.pth.tar")["step"] == 1
    for entry in h:                                               # phase timings per step
        assert set(entry["seconds"]) == {"train", "evaluate", "extract", "merge", "cluster"}
        assert entry["seconds"]["cluster"] == entry["seconds"]["merge"] and entry["gpu_peak_mb"] is None
    assert h[0]["seconds"]["extract"] > 0 and h[1]["seconds"]["evaluate"] > h[0]["seconds"]["evaluate"]
    log = (logs / "log.txt").read_text()
    assert "evaluation skipped (--eval-every 2)" in log and "step 0 seconds: train" in log


def test_a_device_this_machine_lacks_is_one_clear_error():
    import torch

    from buc.extractor import resolve_device
    from buc.utils.runfiles import BUCError

    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(BUCError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(BUCError, match="no CUDA device is available here"):
            resolve_device("cuda")
    with pytest.raises(BUCError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")
