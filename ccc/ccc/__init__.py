"""3C: Confidence-guided Clustering and Contrastive learning for unsupervised person re-ID
(Zheng, Qu, Shang, Yang, Shen; arXiv 2408.09464), reproduced on PyTorch 2.

The library core takes plain arguments (no argparse/YAML); ``examples/train.py`` holds the
epoch loop (extract -> cluster -> memory -> train -> evaluate) and ``examples/options.py`` the flags.

    ccc.datasets    Market-1501, MSMT17, VeRi-776 loaders (one file each)
    ccc.data        transforms, 3C's identity sampler, image reading, loaders
    ccc.models      ResNet (+IBN-a) + GeM + BN neck
    ccc.hdc         HDC, harmonic discrepancy clustering (compiled kernels: Cython + OpenMP)
    ccc.cluster     Jaccard + DBSCAN (warm-up and the DBSCAN variant), k-means, post-processing
    ccc.memory      cluster memories: cm, cm_hard, tccl_camera, hd_camera (CHD), ...
    ccc.losses      ClusterNCE and its camera-entropy weighting (CIE)
    ccc.trainer     one training epoch
    ccc.evaluation  feature extraction, common_eval ranking, test-time re-ranking
    ccc.extractor   FeatureExtractor: features of a trained model for any images (the public API)
    ccc.engine      the run's plumbing: preflight, set-up, resume_or_load, torchrun wrappers,
                    best/last bookkeeping, checkpoints, results.json, main()'s error handling
"""
__version__ = "1.0.0"

from .extractor import FeatureExtractor, list_inputs  # noqa: E402

__all__ = ["FeatureExtractor", "list_inputs"]
