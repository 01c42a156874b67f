"""Backbones ending in the global average pool named ``avg_pool`` (the PUL feature layer).

* ``resnet50``: ``keras.applications.ResNet50(include_top=False, pooling='avg')``, the original's
  network. Keras 2.0.4 ended ResNet50 with a 7x7 ``AveragePooling2D`` named ``avg_pool``; Keras >= 2.2
  dropped it (the cause of the original's issues #17-#19) and Keras 3 names the global average pool
  of ``pooling='avg'`` ``avg_pool``, which is the same operation at 224x224 (7x7 map) and also
  works at other input sizes.
* ``resnet18``: a ResNet-18 (basic blocks [2, 2, 2, 2]) written here with Keras layers, the same
  stem, naming scheme, BatchNorm epsilon and ``avg_pool`` as Keras' ResNet50. Used only by the CPU
  smoke preset: Keras' ResNet50 trains at about 50 images/s at 64x32 on 2 cores and did not learn
  from random initialisation in the time budget (measured while calibrating the synthetic benchmark); ImageNet
  weights cannot be downloaded here. ``last_stride=1`` keeps a 4x2 final map at 64x32 input.
"""
from __future__ import annotations

import keras
from keras import layers

BN_EPS = 1.001e-5  # keras.applications.ResNet50


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_1_conv")(x)
    y = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_1_bn")(y)
    y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv")(y)
    y = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_2_bn")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}_0_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def resnet18(input_shape, last_stride: int = 2, base_width: int = 64, blocks=(2, 2, 2, 2),
             name: str = "resnet18") -> keras.Model:
    """ResNet-18 up to the global average pool ``avg_pool`` (random initialisation); stage widths
    base_width x (1, 2, 4, 8) (64: the standard ResNet-18, 512-d features)."""
    widths = tuple(base_width * m for m in (1, 2, 4, 8))
    inp = keras.Input(shape=input_shape, name="input_layer")
    x = layers.ZeroPadding2D(3, name="conv1_pad")(inp)
    x = layers.Conv2D(base_width, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPS, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage, (n, f) in enumerate(zip(blocks, widths)):
        for b in range(n):
            stride = 1
            if b == 0 and stage > 0:
                stride = last_stride if stage == len(blocks) - 1 else 2
            x = _basic_block(x, f, stride, f"conv{stage + 2}_block{b + 1}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inp, x, name=name)


def resnet50(input_shape, weights=None) -> keras.Model:
    """Keras' ResNet50 without top, global average pool ``avg_pool``; weights None or a file path."""
    return keras.applications.ResNet50(include_top=False, weights=weights, input_shape=input_shape,
                                       pooling="avg")


ARCHS = ("resnet50", "resnet18")
