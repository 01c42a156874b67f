"""Softmax cross-entropy on one-hot (pseudo-)labels (spec A7).

L = -(1/|B|) sum_i log softmax(W drop_0.5(f(x_i)) + b)[y_i]. The network ends with the softmax
(Dense 'fc8' with softmax activation), so the loss takes probabilities, clipped to
[1e-7, 1 - 1e-7] as Keras always has. Self-paced view (the paper): sum_i v_i L_i with binary
weights v_i = 1 for the reliable images, which is training on the reliable set only.
"""
from __future__ import annotations


def softmax_cross_entropy():
    import keras
    return keras.losses.CategoricalCrossentropy(from_logits=False, label_smoothing=0.0)
