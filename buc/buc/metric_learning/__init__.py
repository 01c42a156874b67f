"""Learned metrics for evaluation (Open-ReID's ``metric_learning``; optional, ``--metric``).

``euclidean`` (identity) and ``kissme`` are ours; the others come from metric-learn (imported
only when asked for, so a broken metric-learn never stops training, cf. BUC issue #4). BUC is
unsupervised, so a metric is fitted on the training features with the current *pseudo-labels*.
"""
from __future__ import annotations

from .euclidean import Euclidean
from .kissme import KISSME

_METRIC_LEARN = {
    "itml": "ITML_Supervised",
    "lmnn": "LMNN",
    "lsml": "LSML_Supervised",
    "sdml": "SDML_Supervised",
    "nca": "NCA",
    "lfda": "LFDA",
    "rca": "RCA_Supervised",
}


def names() -> list[str]:
    return ["euclidean", "kissme", *sorted(_METRIC_LEARN)]


def get_metric(algorithm: str, *args, **kwargs):
    if algorithm == "euclidean":
        return Euclidean()
    if algorithm == "kissme":
        return KISSME(*args, **kwargs)
    if algorithm in _METRIC_LEARN:
        import metric_learn
        return getattr(metric_learn, _METRIC_LEARN[algorithm])(*args, **kwargs)
    raise KeyError(f"unknown metric {algorithm!r}; valid: {', '.join(names())}")
