"""PUL's loss is Keras 2.0.4's categorical cross-entropy on the softmax *probabilities*, clipped to
[1e-7, 1 - 1e-7] with zero gradient at the clip (not Keras 3's exact log-softmax from the logits)."""
import math

import numpy as np
import pytest


def loss_and_grad(logits, y, loss=None):
    import keras
    import tensorflow as tf

    from pul.losses import softmax_cross_entropy
    loss = loss or softmax_cross_entropy()
    z = tf.Variable(np.asarray(logits, np.float32))
    with tf.GradientTape() as tape:
        p = keras.layers.Activation("softmax")(z)   # what the fc8 Dense(softmax) layer outputs
        value = loss(tf.constant(np.asarray(y, np.float32)), p)
    return float(value), tape.gradient(value, z).numpy(), p.numpy()


def test_probability_below_the_clip_costs_minus_log_1e7_and_has_no_gradient():
    # softmax(0, -40)[1] = e^-40 / (1 + e^-40) = 4.25e-18, far below 1e-7
    value, grad, p = loss_and_grad([[0.0, -40.0]], [[0.0, 1.0]])
    assert p[0, 1] == pytest.approx(4.248e-18, rel=1e-3)
    assert value == pytest.approx(-math.log(1e-7), abs=1e-4)       # 16.118, not 40.0
    assert value == pytest.approx(16.118, abs=1e-3)
    np.testing.assert_array_equal(grad, 0.0)                        # not (1, -1)


def test_probability_above_one_minus_the_clip_has_no_gradient():
    value, grad, _ = loss_and_grad([[40.0, 0.0]], [[1.0, 0.0]])
    assert value == pytest.approx(-math.log(np.float32(1 - 1e-7)), rel=1e-3)   # 1.19e-7, not 0
    np.testing.assert_array_equal(grad, 0.0)


def test_inside_the_clip_it_is_the_ordinary_cross_entropy_and_gradient():
    # logits log(0.7), log(0.2), log(0.1): p = (0.7, 0.2, 0.1); true class 1 -> -log 0.2 = 1.6094;
    # a second image, true class 0 -> -log 0.7; the batch loss is the mean; dL/dz = (p - y) / 2
    z = np.log([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    y = [[0, 1, 0], [1, 0, 0]]
    value, grad, _ = loss_and_grad(z, y)
    assert value == pytest.approx((-math.log(0.2) - math.log(0.7)) / 2, abs=1e-5)
    np.testing.assert_allclose(grad, (np.array([[0.7, 0.2, 0.1]] * 2) - np.array(y)) / 2, atol=1e-6)


def test_only_the_clipped_sample_loses_its_gradient():
    # in a batch of two, the clipped image contributes 16.118 / 2 and nothing to the gradient
    z = [[0.0, -40.0], [np.log(0.25), np.log(0.75)]]
    value, grad, _ = loss_and_grad(z, [[0, 1], [0, 1]])
    assert value == pytest.approx((-math.log(1e-7) - math.log(0.75)) / 2, abs=1e-4)
    np.testing.assert_array_equal(grad[0], 0.0)
    np.testing.assert_allclose(grad[1], [0.25 / 2, -0.25 / 2], atol=1e-6)


def test_the_compiled_classifier_uses_it_and_a_saved_model_keeps_it(tmp_path):
    import tensorflow as tf

    from pul.checkpoint import save_model
    from pul.model import add_classifier, build_backbone, compile_classifier, load_model
    model = compile_classifier(add_classifier(build_backbone("resnet18", (32, 16, 3), base_width=8), 3,
                                              seed=0))
    p = tf.constant([[4.2e-18, 1.0 - 4.2e-18, 0.0]])
    y = tf.constant([[1.0, 0.0, 0.0]])
    assert float(model.loss(y, p)) == pytest.approx(16.118, abs=1e-3)
    save_model(model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras", compile=True)
    assert float(again.loss(y, p)) == pytest.approx(16.118, abs=1e-3)
