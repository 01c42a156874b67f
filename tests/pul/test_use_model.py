"""Using a trained model (issue 19): the checkpoint carries its configuration, FeatureExtractor
gives the features test.py ranks, extract.py, export to a SavedModel, test.py --rerank/--visrank,
the common TensorBoard tags and the phase timings of an iteration. One tiny trained run per
session (conftest.tiny_run)."""
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLES

pytestmark = pytest.mark.slow   # the session's tiny run trains a network

COMMON_TAGS = ("eval/mAP", "eval/rank1", "train/loss", "train/lr", "cluster/clusters", "cluster/outliers",
               "time/epoch")


def script(name):
    """examples/<name>.py as a module (its main() runs in this process: TensorFlow is imported once)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"pul_examples_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def error_line(capsys):
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_checkpoints_carry_the_run_configuration(tiny_run):
    from pul.checkpoint import read_config
    cfg = read_config(tiny_run["checkpoint"])
    assert (cfg["stage"], cfg["iteration"], cfg["dataset"], cfg["source"]) == ("pul", 1, "market1501",
                                                                              "dukemtmcreid")
    assert cfg["height"] == 32 and cfg["kmeans"] == "sklearn"
    base = read_config(tiny_run["logs"] / "baseline" / "0.keras")
    assert base["stage"] == "baseline"
    assert read_config(tiny_run["logs"] / "results.json") is None      # not a checkpoint: no config


def test_feature_extractor_gives_the_features_test_py_ranks(tiny_run, tmp_path):
    from pul import FeatureExtractor
    from pul.datasets import init_dataset
    from pul.evaluation import COMMON_AP, evaluate_features, extract_from_records
    from pul.extractor import l2_normalise, list_inputs
    from pul.model import feature_model, load_model

    ds = init_dataset("market", tiny_run["data"] / "b")
    fx = FeatureExtractor(tiny_run["checkpoint"], batch_size=7)
    qf = fx([r[0] for r in ds.query])
    assert qf.dtype == np.float32 and qf.shape[1] == fx.dim
    np.testing.assert_allclose(np.linalg.norm(qf, axis=1), 1.0, atol=1e-5)
    # what test.py ranks: extract_from_records of the avg_pool model (cosine = dot of normalised rows)
    model = load_model(tiny_run["checkpoint"], compile=False)
    ref = extract_from_records(feature_model(model), ds.query, fx.size, 64, progress=False)
    np.testing.assert_allclose(qf, l2_normalise(ref), atol=1e-5)
    # a folder, and PIL images, give the same rows in list_inputs' order
    from PIL import Image
    paths, names = list_inputs(tiny_run["data"] / "b")
    folder = fx(tiny_run["data"] / "b")
    assert len(folder) == len(paths) and names == sorted(names)
    idx = names.index(str(Path(ds.query[0][0]).relative_to(tiny_run["data"] / "b")))
    np.testing.assert_allclose(folder[idx], qf[0], atol=1e-5)
    np.testing.assert_allclose(fx([Image.open(ds.query[0][0])]), qf[:1], atol=1e-6)

    # test.py with nothing but the checkpoint (dataset and root from its stored configuration)
    import json
    test = script("test")
    assert test.main([str(tiny_run["checkpoint"]), "--no-progress", "--json", str(tmp_path / "t.json")]) == 0
    t = json.loads((tmp_path / "t.json").read_text())
    gf = fx([r[0] for r in ds.gallery])
    mine = evaluate_features(qf, gf, ds.query, ds.gallery).metrics(COMMON_AP)
    assert t["common"]["mAP"] == pytest.approx(mine["mAP"], abs=1e-6)
    assert t["common"] == pytest.approx(tiny_run["results"]["common"], abs=1e-6)


def test_test_py_rerank_and_visrank(tiny_run, tmp_path):
    import json

    import common_eval


    test = script("test")
    argv = [str(tiny_run["checkpoint"]), "--no-progress", "--rerank", "--json", str(tmp_path / "r.json"),
            "--visrank", "3", "--visrank-queries", "2", "--logs-dir", str(tmp_path / "run")]
    assert test.main(argv) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["rerank"] is True and 0 < r["common"]["mAP"] <= 100
    # the re-ranked distances are what was evaluated: recompute them independently of test.py
    from pul import FeatureExtractor
    from pul.datasets import init_dataset
    from pul.evaluation import COMMON_AP, evaluate_distances
    ds = init_dataset("market", tiny_run["data"] / "b")
    fx = FeatureExtractor(tiny_run["checkpoint"])
    dist = common_eval.k_reciprocal_rerank(query_features=fx([q[0] for q in ds.query]),
                                           gallery_features=fx([g[0] for g in ds.gallery]), metric="cosine")
    assert r["common"]["mAP"] == pytest.approx(
        evaluate_distances(dist, ds.query, ds.gallery).metrics(COMMON_AP)["mAP"], abs=1e-4)
    pics = sorted((tmp_path / "run" / "visrank").glob("*.jpg"))
    assert (tmp_path / "run" / "visrank" / "grid.jpg") in pics and len(pics) == 3


def test_extract_py_writes_features_and_names_and_refuses_bad_input(tiny_run, tmp_path, capsys):
    from pul import FeatureExtractor
    from pul.datasets import init_dataset
    extract = script("extract")
    images = Path(init_dataset("market", tiny_run["data"] / "b").query[0][0]).parent
    out = tmp_path / "f.npy"
    assert extract.main(["--checkpoint", str(tiny_run["checkpoint"]), "--images", str(images),
                         "--out", str(out), "--batch-size", "5"]) == 0
    feats = np.load(out)
    names = (tmp_path / "f.txt").read_text().splitlines()
    assert feats.dtype == np.float32 and len(feats) == len(names) == len(list(images.glob("*.jpg")))
    np.testing.assert_allclose(feats, FeatureExtractor(tiny_run["checkpoint"])(
        [images / n for n in names]), atol=1e-6)
    capsys.readouterr()

    empty, bad = tmp_path / "empty", tmp_path / "bad"
    empty.mkdir()
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"not an image")
    before = out.read_bytes()
    ckpt = str(tiny_run["checkpoint"])
    for argv, words in (([str(tmp_path / "none.keras"), str(images)], "does not exist"),
                        ([ckpt, str(empty)], "no image"), ([ckpt, str(bad)], "x.jpg"),
                        ([ckpt, str(tmp_path / "no")], "does not exist")):
        assert extract.main(["--checkpoint", argv[0], "--images", argv[1], "--out", str(out)]) == 2
        assert words in error_line(capsys)
    assert out.read_bytes() == before and not list(tmp_path.glob(".*tmp*"))


def test_export_savedmodel_equals_keras_at_224(tiny_run, tmp_path, capsys):
    """A SavedModel of a 224 x 224 network (the paper's input size; the smoke backbone, random init)
    gives FeatureExtractor's features to 1e-4 on real images, for batches of 3 and 1."""
    import json

    import tensorflow as tf

    from pul import FeatureExtractor
    from pul.engine import save_inference_copy
    from pul.model import add_classifier, build_backbone
    from pul.preprocessing import caffe_preprocess
    ckpt = tmp_path / "224.keras"
    model = add_classifier(build_backbone("resnet18", (224, 224, 3), None, 1, 32), 5, seed=0)
    save_inference_copy(model, ckpt, {"height": 224, "width": 224, "stage": "pul"})
    export = script("export")
    out = tmp_path / "saved"
    assert export.main(["--checkpoint", str(ckpt), "--out", str(out)]) == 0
    meta = json.loads((out / "assets.extra" / "pul_preprocessing.json").read_text())
    assert (meta["height"], meta["width"], meta["channel_order"]) == (224, 224, "BGR")
    assert meta["mean"] == pytest.approx([103.939, 116.779, 123.68])

    fx = FeatureExtractor(ckpt)
    from pul.datasets import init_dataset
    paths = [r[0] for r in init_dataset("market", tiny_run["data"] / "b").query[:3]]
    x = caffe_preprocess(fx._arrays(paths))
    assert x.shape == (3, 224, 224, 3)
    loaded = tf.saved_model.load(str(out))
    got = loaded.serve(tf.constant(x))["features"].numpy()
    np.testing.assert_allclose(got, fx(paths), atol=1e-4)
    np.testing.assert_allclose(loaded.serve(tf.constant(x[:1]))["features"].numpy(), got[:1], atol=1e-5)

    capsys.readouterr()       # an existing folder is never written over
    assert export.main(["--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert "already exists" in error_line(capsys)

    # a checkpoint without a stored configuration (earlier versions) still loads; test.py then
    # needs --dataset, and says so in one line
    old = tmp_path / "old.keras"
    save_inference_copy(model, old)
    from pul.checkpoint import read_config
    assert read_config(old) is None
    np.testing.assert_allclose(FeatureExtractor(old)(paths), got, atol=1e-4)
    assert script("test").main([str(old), "--no-progress"]) == 2
    assert "--dataset" in error_line(capsys)


def test_common_tensorboard_tags_and_phase_timings(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(tiny_run["logs"] / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    values = {}
    for tag in acc.Tags()["scalars"]:
        values[tag] = [e.value for e in acc.Scalars(tag)]
    for tag in acc.Tags()["tensors"]:      # tf.summary.scalar in TF 2 is stored as a scalar tensor
        values[tag] = [float(tf_scalar(e.tensor_proto)) for e in acc.Tensors(tag)]
    for tag in COMMON_TAGS:
        assert tag in values and values[tag] and all(math.isfinite(v) for v in values[tag]), tag
    assert values["cluster/outliers"] == [0.0]
    assert values["cluster/clusters"] == [float(tiny_run["results"]["num_clusters"])]
    assert values["eval/mAP"][-1] == pytest.approx(tiny_run["results"]["common"]["mAP"], abs=1e-4)
    # the phase seconds of the iteration: in the history and in log.txt
    seconds = tiny_run["results"]["history"][0]["seconds"]
    common = ("extract", "cluster", "train", "evaluate")
    assert set(seconds) == {*common, "kmeans", "selection"}
    assert all(v >= 0 for v in seconds.values())
    assert seconds["cluster"] == pytest.approx(seconds["kmeans"] + seconds["selection"], abs=2e-3)
    assert values["time/epoch"][0] == pytest.approx(sum(seconds[k] for k in common), rel=1e-3, abs=5e-3)
    for k in common:
        assert values[f"time/{k}"] == [pytest.approx(seconds[k], abs=1e-3)], k
    assert "seconds: extract" in (tiny_run["logs"] / "log.txt").read_text()


def tf_scalar(proto):
    import tensorflow as tf
    return tf.make_ndarray(proto)
