"""Softmax cross-entropy on one-hot (pseudo-)labels, as Keras 2.0.4 computed it (spec A7).

The network ends with the softmax (Dense 'fc8' with softmax activation) and the original compiled
it with ``loss='categorical_crossentropy'``. Keras 2.0.4 (TensorFlow backend) computed that loss
from the *probabilities* p the model outputs:

    p <- p / sum_c p_c                         (rescaled to sum 1)
    p <- clip(p, 1e-7, 1 - 1e-7)              (tf.clip_by_value: zero gradient outside the range)
    L_i = -sum_c y_ic log p_ic,   L = mean_i L_i over the batch

so an image whose true-class probability is below 1e-7 costs at most -log(1e-7) = 16.118 and
contributes **no gradient**. Keras 3's ``CategoricalCrossentropy(from_logits=False)`` does not do
this: when its input comes from a softmax layer it takes the softmax's logits and computes the
exact log-softmax (e.g. at p = 4.2e-18 a loss of 40.0 with a gradient of norm ~1.4 instead of
16.118 and 0). ``softmax_cross_entropy`` is therefore written out here with the clip.
Self-paced view (the paper): sum_i v_i L_i with binary weights v_i = 1 for the reliable images,
which is training on the reliable set only.
"""
from __future__ import annotations

EPSILON = 1e-7  # keras.backend.epsilon() of Keras 2.0.4 (and 3)


def clipped_categorical_crossentropy(y_true, y_pred):
    """Per-sample loss of Keras 2.0.4's categorical_crossentropy on probabilities y_pred."""
    from keras import ops
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    p = y_pred / ops.sum(y_pred, axis=-1, keepdims=True)
    p = ops.clip(p, EPSILON, 1.0 - EPSILON)
    return -ops.sum(y_true * ops.log(p), axis=-1)


def _register():
    import keras

    @keras.saving.register_keras_serializable(package="pul", name="ClippedCategoricalCrossentropy")
    class ClippedCategoricalCrossentropy(keras.losses.Loss):
        """The Keras 2.0.4 loss as a (serialisable) Keras 3 loss: mean over the batch."""

        def __init__(self, name="categorical_crossentropy", reduction="sum_over_batch_size", dtype=None):
            super().__init__(name=name, reduction=reduction, dtype=dtype)

        def call(self, y_true, y_pred):
            return clipped_categorical_crossentropy(y_true, y_pred)

    return ClippedCategoricalCrossentropy


_CLASS = None


def loss_class():
    """The registered loss class (registered once; load_model calls this before reading a compiled
    .keras file, whose loss is stored by this name)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _register()
    return _CLASS


def softmax_cross_entropy():
    """The loss PUL compiles its classifier with (baseline and every PUL fine-tuning)."""
    return loss_class()()
