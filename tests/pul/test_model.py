"""The network (spec A4): feature layer avg_pool, the fc8 head, pretrained weights by path."""
import numpy as np
import pytest

from pul.model import (
    FEATURE_LAYER,
    RESNET50_NOTOP,
    PretrainedWeightsError,
    add_classifier,
    build_backbone,
    compile_classifier,
    feature_model,
    resolve_pretrained,
)


@pytest.fixture(scope="module")
def r50():
    return build_backbone("resnet50", (64, 32, 3), None)


def test_resnet50_feature_layer_is_the_global_average_pool(r50):
    import keras
    layer = r50.get_layer(FEATURE_LAYER)
    assert isinstance(layer, keras.layers.GlobalAveragePooling2D)
    assert r50.output_shape == (None, 2048)
    x = np.random.default_rng(0).normal(0, 50, (2, 64, 32, 3)).astype(np.float32)
    last_block = keras.Model(r50.input, r50.get_layer("conv5_block3_out").output)
    fmap = last_block(x, training=False).numpy()
    assert fmap.shape == (2, 2, 1, 2048)                       # 64x32 / 32
    f = r50(x, training=False).numpy()
    np.testing.assert_allclose(f, fmap.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    assert (f >= 0).all()                                       # post-ReLU average


def test_head_and_feature_model(r50):
    import keras
    model = compile_classifier(add_classifier(r50, 37, seed=1))
    names = [layer.name for layer in model.layers[-3:]]
    assert names == ["flatten", "dropout", "fc8"]
    assert model.get_layer("dropout").rate == 0.5
    fc8 = model.get_layer("fc8")
    assert fc8.units == 37 and fc8.activation is keras.activations.softmax
    w, b = (v.numpy() for v in fc8.weights)
    assert w.shape == (2048, 37) and 0.0008 < w.std() < 0.0012 and abs(w.mean()) < 1e-4
    assert (b == 0).all()
    assert all(layer.trainable for layer in model.layers)       # no frozen block
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.get_config()["momentum"] == 0.9 and not model.optimizer.get_config()["nesterov"]
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.001)
    fm = feature_model(model)
    x = np.random.default_rng(1).normal(0, 50, (3, 64, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(fm.predict_on_batch(x), r50(x, training=False).numpy(), rtol=1e-5)
    probs = model.predict_on_batch(x)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_resnet18_smoke_backbone_ends_in_avg_pool():
    m = build_backbone("resnet18", (64, 32, 3), None, last_stride=1)
    assert m.output_shape == (None, 512)
    assert m.get_layer("conv5_block2_out").output.shape[1:3] == (4, 2)   # last stride 1
    m2 = build_backbone("resnet18", (64, 32, 3), None, last_stride=2)
    assert m2.get_layer("conv5_block2_out").output.shape[1:3] == (2, 1)
    half = build_backbone("resnet18", (64, 32, 3), None, last_stride=1, base_width=32)   # the smoke one
    assert half.output_shape == (None, 256) and half.get_layer(FEATURE_LAYER).name == "avg_pool"
    assert half.count_params() < m.count_params() / 3
    with pytest.raises(Exception, match="resnet18 smoke backbone only"):
        build_backbone("resnet50", (64, 32, 3), None, base_width=32)


def test_pretrained_weights_by_explicit_path(tmp_path, r50):
    """A fabricated weights file (random init with a planted value) loads by path."""
    kernel = r50.get_layer("conv1_conv").kernel
    planted = kernel.numpy().copy()
    planted[0, 0, 0, :5] = [1, 2, 3, 4, 5]
    kernel.assign(planted)
    path = tmp_path / "mine.weights.h5"
    r50.save_weights(path)
    assert resolve_pretrained(str(path)) == str(path)
    loaded = build_backbone("resnet50", (96, 48, 3), resolve_pretrained(str(path)))  # any input size
    np.testing.assert_array_equal(loaded.get_layer("conv1_conv").kernel.numpy(), planted)


def test_imagenet_weights_from_the_keras_cache(tmp_path, monkeypatch, r50):
    """--pretrained imagenet takes the official file name from $KERAS_HOME/models (legacy h5)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    cache = tmp_path / "keras_home" / "models"
    cache.mkdir(parents=True)
    marker = r50.get_layer("conv1_conv").kernel.numpy().copy()
    marker[1, 1, 1, 1] = 42.0
    r50.get_layer("conv1_conv").kernel.assign(marker)
    with h5py.File(cache / RESNET50_NOTOP, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, r50)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    path = resolve_pretrained("imagenet", "resnet50", allow_download=False)
    assert path == str(cache / RESNET50_NOTOP)
    loaded = build_backbone("resnet50", (64, 32, 3), path)
    assert float(loaded.get_layer("conv1_conv").kernel.numpy()[1, 1, 1, 1]) == 42.0


def test_missing_weights_give_a_message_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty"))
    with pytest.raises(PretrainedWeightsError) as e:
        resolve_pretrained("imagenet", "resnet50", allow_download=False)
    msg = str(e.value)
    assert RESNET50_NOTOP in msg and str(tmp_path / "empty" / "models") in msg and "--pretrained none" in msg
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        resolve_pretrained(str(tmp_path / "nope.h5"))
    with pytest.raises(PretrainedWeightsError, match="no ImageNet weights.*resnet18"):
        resolve_pretrained("imagenet", "resnet18")
    assert resolve_pretrained("none") is None and resolve_pretrained(None) is None
    bad = tmp_path / "garbage.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(PretrainedWeightsError, match="garbage.weights.h5"):
        build_backbone("resnet18", (32, 16, 3), str(bad))
