"""AuxUSL: unsupervised video person re-ID with auxiliary information mined from datasets
(Teng, He, Guo, Ding; arXiv 2205.03124), reproduced on PyTorch 2 in fast-reid's shape.

The library core takes plain arguments; ``auxusl.config`` holds the yacs tree and
``examples/train.py`` builds everything from it and runs the epoch loop
(extract -> Jaccard (+SCP, STS) -> (IC)DBSCAN -> centroids -> RLSCE neighbours -> train ->
evaluate).

    auxusl.config     yacs defaults (the original's keys), _BASE_ files, KEY VALUE overrides
    auxusl.datasets   MARS, DukeMTMC-VideoReID (one file each)
    auxusl.data       per-frame transforms, clip sampling, identity sampler, loaders
    auxusl.models     ResNet + BN neck video model, EMA teacher
    auxusl.losses     CE / LSCE / RLSCE, triplet / WATL, soft CE, soft triplet (one file each)
    auxusl.cluster    Jaccard + SCP/STS distance, adaptive eps, DBSCAN, ICDBSCAN, RLSCE neighbours
    auxusl.auxinfo    TOC / SCP / STS relations from frame names, their .npz files
    auxusl.tools      python -m auxusl.tools.make_aux
    auxusl.trainer    one training epoch;  auxusl.evaluation: features, test-time terms, ranking
    auxusl.engine     the run plumbing of examples/train.py (set-up, resume-or-load, bookkeeping)
    auxusl.extractor  FeatureExtractor: features of your own tracklets from a checkpoint
"""

__version__ = "1.0.0"
__all__ = ["FeatureExtractor"]


def __getattr__(name):  # FeatureExtractor on first use: importing the package stays light
    if name == "FeatureExtractor":
        from .extractor import FeatureExtractor

        return FeatureExtractor
    raise AttributeError(f"module 'auxusl' has no attribute {name!r}")
