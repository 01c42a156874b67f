"""The papers' published numbers, one entry per row of their tables (percentages).

Keys: (method, variant, source, target); source is None for the purely unsupervised methods.
Only the metrics a paper prints are present. Sources are the original READMEs / papers as
summarised in the project's specs.
"""
from __future__ import annotations

PAPER = {
    # PUL (TOMM 2018), cross-dataset: the baseline fine-tuned on the source, PUL on the target
    ("pul", None, "duke", "market"): {"rank1": 45.5, "rank5": 60.7, "rank10": 66.7, "mAP": 20.5},
    ("pul", None, "market", "duke"): {"rank1": 30.0, "rank5": 43.4, "rank10": 48.5, "mAP": 16.4},
    # BUC (AAAI 2019), numbers after the authors' memory-initialisation fix (README)
    ("buc", None, None, "market"): {"rank1": 61.9, "rank5": 73.5, "rank10": 78.2, "mAP": 29.6},
    ("buc", None, None, "duke"): {"rank1": 40.4, "rank5": 52.5, "rank10": 58.2, "mAP": 22.1},
    ("buc", None, None, "mars"): {"rank1": 55.1, "rank5": 68.3, "rank10": 72.8, "mAP": 29.4},
    ("buc", None, None, "dukevideo"): {"rank1": 74.8, "rank5": 86.8, "rank10": 89.7, "mAP": 66.7},
    # CDSM (SMC 2022), README = paper
    ("cdsm", None, None, "market"): {"mAP": 85.6, "rank1": 93.9, "rank5": 97.8, "rank10": 98.5},
    ("cdsm", None, None, "duke"): {"mAP": 73.7, "rank1": 85.1, "rank5": 92.4, "rank10": 94.7},
    ("cdsm", None, None, "msmt17"): {"mAP": 31.0, "rank1": 61.1, "rank5": 71.3, "rank10": 76.2},
    # 3C (arXiv 2408.09464), Table III
    ("ccc", "hdc", None, "market"): {"mAP": 86.7, "rank1": 94.7, "rank5": 97.8, "rank10": 98.2},
    ("ccc", "hdc", None, "msmt17"): {"mAP": 45.3, "rank1": 73.1, "rank5": 82.7, "rank10": 85.5},
    ("ccc", "hdc", None, "veri"): {"mAP": 47.1, "rank1": 90.6, "rank5": 93.2, "rank10": 95.1},
    ("ccc", "dbscan", None, "market"): {"mAP": 84.6, "rank1": 93.6, "rank5": 97.3, "rank10": 98.2},
    ("ccc", "dbscan", None, "msmt17"): {"mAP": 47.4, "rank1": 73.7, "rank5": 83.5, "rank10": 86.5},
    ("ccc", "dbscan", None, "veri"): {"mAP": 44.5, "rank1": 86.2, "rank5": 89.8, "rank10": 91.7},
    ("ccc", "kmeans", None, "market"): {"mAP": 85.5, "rank1": 94.0, "rank5": 97.3, "rank10": 98.1},
    ("ccc", "kmeans", None, "msmt17"): {"mAP": 34.5, "rank1": 65.2, "rank5": 75.4, "rank10": 79.4},
    ("ccc", "kmeans", None, "veri"): {"mAP": 46.6, "rank1": 89.8, "rank5": 92.8, "rank10": 94.3},
    # AuxUSL (arXiv 2205.03124), README table: "Ours-" without, "Ours" with auxiliary information
    ("auxusl", "ours-", None, "mars"): {"rank1": 80.9, "mAP": 72.4},
    ("auxusl", "ours-", None, "dukevideo"): {"rank1": 85.3, "mAP": 81.1},
    ("auxusl", "ours", None, "dukevideo"): {"rank1": 91.9, "mAP": 89.9},
}


def paper_numbers(method: str, variant: str | None, source: str | None, target: str) -> dict | None:
    """The published row matching a run, or None."""
    return PAPER.get((method, variant, source, target))
