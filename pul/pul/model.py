"""The PUL network (spec A4): backbone -> avg_pool (2048-d for ResNet-50) -> Flatten -> Dropout(0.5)
-> Dense(C, softmax, name 'fc8', N(0, 0.001) kernel, zero bias); every layer trainable, BatchNorm
in training mode during fit. The feature used for clustering, selection and evaluation is the
``avg_pool`` output in inference mode.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import PULError

FEATURE_LAYER = "avg_pool"
RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
RESNET50_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                      + RESNET50_NOTOP)
RESNET50_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


class PretrainedWeightsError(PULError):
    """The requested pretrained weights are not available (the message says which file to put where)."""


def _keras():
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        raise PULError(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}: PUL runs on the TensorFlow backend "
                       "only (unset KERAS_BACKEND or set it to 'tensorflow')")
    import keras
    if keras.backend.backend() != "tensorflow":
        raise PULError(f"Keras was already imported with the {keras.backend.backend()!r} backend; PUL needs "
                       "'tensorflow' (import pul before keras, or set KERAS_BACKEND=tensorflow)")
    return keras


def keras_home() -> Path:
    """Keras' cache folder: $KERAS_HOME, else ~/.keras (Keras falls back to /tmp/.keras if unwritable)."""
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"])
    home = Path(os.path.expanduser("~")) / ".keras"
    if not os.access(home if home.exists() else home.parent, os.W_OK):
        return Path("/tmp/.keras")
    return home


def resolve_pretrained(pretrained: str | None, arch: str = "resnet50", allow_download: bool = True):
    """'none' -> None (random init); a file path -> that path; 'imagenet' -> the Keras ImageNet
    file (no top) from the Keras cache, downloaded there by Keras if online."""
    if pretrained is None or str(pretrained).lower() in ("none", ""):
        return None
    if str(pretrained).lower() == "imagenet":
        if arch != "resnet50":
            raise PretrainedWeightsError(f"no ImageNet weights exist for the '{arch}' backbone of this "
                                         "repository; use --pretrained none or a weights file saved from it")
        cached = keras_home() / "models" / RESNET50_NOTOP
        if cached.is_file():
            return str(cached)
        hint = (f"the ImageNet weights file '{RESNET50_NOTOP}' (Keras applications, ResNet50 without top) "
                f"is not in the Keras cache '{cached.parent}/' and could not be downloaded. Put it there "
                f"(or anywhere and pass --pretrained /path/to/{RESNET50_NOTOP}); it is published at "
                f"{RESNET50_NOTOP_URL}. Use --pretrained none for random initialisation.")
        if not allow_download:
            raise PretrainedWeightsError(hint)
        keras = _keras()
        try:
            return keras.utils.get_file(RESNET50_NOTOP, RESNET50_NOTOP_URL, cache_subdir="models",
                                        file_hash=RESNET50_NOTOP_MD5)
        except Exception as exc:  # Keras raises a bare Exception on a failed fetch
            raise PretrainedWeightsError(hint + f" (download error: {exc})") from exc
    path = Path(pretrained)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file '{path}' does not exist (--pretrained takes "
                                     "'imagenet', 'none' or the path of a Keras weights file)")
    return str(path)


def build_backbone(arch: str, input_shape, weights=None, last_stride: int = 2, base_width: int = 64):
    """Backbone ending in the ``avg_pool`` feature layer; weights: None or a file path."""
    _keras()
    from .backbones import ARCHS, resnet18, resnet50
    if arch not in ARCHS:
        raise PULError(f"unknown backbone {arch!r}; valid: {', '.join(ARCHS)}")
    if arch == "resnet50":
        if last_stride != 2 or base_width != 64:
            raise PULError("last_stride and base_width apply to the resnet18 smoke backbone only")
        try:
            return resnet50(tuple(input_shape), weights)
        except (ValueError, OSError) as exc:
            raise PretrainedWeightsError(f"could not load the ResNet50 weights '{weights}': {exc}") from exc
    model = resnet18(tuple(input_shape), last_stride=last_stride, base_width=base_width)
    if weights is not None:
        try:
            model.load_weights(weights)
        except (ValueError, OSError) as exc:
            raise PretrainedWeightsError(f"could not load the resnet18 weights '{weights}': {exc}") from exc
    return model


def add_classifier(backbone_or_model, num_classes: int, seed: int | None = None, dropout: float = 0.5):
    """Cuts at ``avg_pool`` and adds Flatten -> Dropout -> Dense(num_classes, softmax) 'fc8'."""
    keras = _keras()
    from keras import layers
    if num_classes < 1:
        raise PULError(f"the classifier needs at least one class, got {num_classes}")
    feat = backbone_or_model.get_layer(FEATURE_LAYER).output
    x = layers.Flatten(name="flatten")(feat)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    x = layers.Dense(num_classes, activation="softmax", name="fc8",
                     kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=0.001, seed=seed),
                     bias_initializer="zeros")(x)
    model = keras.Model(inputs=backbone_or_model.input, outputs=x, name="pul")
    for layer in model.layers:
        layer.trainable = True
    return model


def compile_classifier(model, learning_rate: float = 0.001, momentum: float = 0.9):
    """SGD (no Nesterov, no weight decay, no schedule) + categorical cross-entropy, as the original."""
    keras = _keras()
    from .losses.softmax_ce import softmax_cross_entropy
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum),
                  loss=softmax_cross_entropy(), metrics=["accuracy"])
    return model


def feature_model(model):
    """The network cut at ``avg_pool``: images -> features (use in inference mode)."""
    keras = _keras()
    try:
        out = model.get_layer(FEATURE_LAYER).output
    except ValueError as exc:
        raise PULError(f"the model has no '{FEATURE_LAYER}' layer (the PUL feature layer); was it saved "
                       "by this package? (The author's Keras 2.0.4 checkpoints use other layer names and "
                       "cannot be loaded: retrain the baseline.)") from exc
    return keras.Model(inputs=model.input, outputs=out, name="pul_features")


def load_model(path, compile: bool = True):
    """Loads a model saved by this package (``.keras``)."""
    keras = _keras()
    from .losses.softmax_ce import loss_class
    loss_class()  # the loss of a compiled file is stored under its registered name
    path = Path(path)
    if not path.is_file():
        raise PULError(f"checkpoint '{path}' does not exist")
    try:
        return keras.models.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # zip/h5/config errors come in many types
        raise PULError(f"cannot load the checkpoint '{path}': {exc}") from exc


def reseed_dropout(model, seed: int) -> None:
    """Sets the state of every layer's random seed generator (the Dropout masks) from ``seed``, so
    that an epoch's masks do not depend on what ran before (exact resume)."""
    import numpy as np
    for i, layer in enumerate(model.layers):
        gen = getattr(layer, "seed_generator", None)
        if gen is not None:
            value = np.array([(seed * 1000003 + i) % (2**31 - 1), 0])
            gen.state.assign(value.astype(gen.state.dtype))


def distribution_strategy(logical_cpus: int = 0):
    """tf.distribute.MirroredStrategy over every visible GPU when there is more than one, else the
    default (single-device) strategy. ``logical_cpus`` > 1 mirrors over that many logical CPU
    devices instead: the multi-GPU code path (replicas, split batches, per-replica BatchNorm,
    summed gradients) on a machine without GPUs. It must run before TensorFlow executes anything."""
    import tensorflow as tf
    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
        except RuntimeError:  # TensorFlow already started: only an equal earlier configuration works
            pass
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if len(devices) != logical_cpus:
            from pul import PULError
            raise PULError(f"--mirror-cpus {logical_cpus}: TensorFlow already runs on {len(devices)} CPU "
                           "device(s); the logical devices must be set before it starts (a fresh process)")
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
