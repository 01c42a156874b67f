"""BUC: a bottom-up clustering approach to unsupervised person re-identification (AAAI 2019).

Open-ReID-shaped reimplementation: ``datasets`` (official layouts, converted on first use),
``models`` (ResNet + average pooling over frames + embedding), ``memory`` / ``losses`` (the
repelled/exclusive memory loss), ``merge`` (the bottom-up merge criterion), ``bottom_up`` (one
step: train, then merge), ``evaluators`` (features + common_eval), ``engine`` (the run plumbing
around the step loop: resume-or-load, run folder, checkpoint, best/last, results.json). The
library takes plain arguments; argparse lives in ``examples/``. ``FeatureExtractor``
(``extractor``) gives the features of a trained checkpoint for any images or tracklets.
"""
from .extractor import FeatureExtractor, list_inputs

__all__ = ["FeatureExtractor", "list_inputs"]
__version__ = "1.0.0"
