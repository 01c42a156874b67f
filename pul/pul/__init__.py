"""PUL: progressive unsupervised person re-identification by clustering and fine-tuning.

Fan, Zheng, Yan, Yang, "Unsupervised Person Re-identification: Clustering and Fine-tuning",
ACM TOMM 14(4), 2018. Rebuilt in Keras 3 on the TensorFlow backend from the authors' Keras 2.0.4
scripts (see ../README.md).

The library core takes plain arguments; argparse and the YAML presets live in ../examples and
../configs. This package never imports torch (TensorFlow loaded before torchvision crashes the
process on the machines of this project).
"""
import os

# Keras 3 picks its backend at import time; PUL is a TensorFlow reproduction.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "1.0.0"


class PULError(RuntimeError):
    """An error with a message meant for the user (what is wrong and how to fix it)."""


def __getattr__(name):
    # the public API, imported when first used (importing pul must not start TensorFlow)
    if name in ("FeatureExtractor", "list_inputs"):
        from . import extractor
        return getattr(extractor, name)
    raise AttributeError(f"module 'pul' has no attribute {name!r}")
