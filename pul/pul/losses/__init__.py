"""PUL's only loss: softmax cross-entropy on the K-way head (spec A7)."""
from .softmax_ce import softmax_cross_entropy

__all__ = ["softmax_cross_entropy"]
