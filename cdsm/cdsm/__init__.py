"""CDSM: Cluster-aware Diversity Samples Mining for unsupervised person re-ID (Zhao, Dou,
Zhang; IEEE SMC 2022), reproduced on PyTorch 2.

The library core takes plain arguments (no argparse/YAML); ``examples/train.py`` holds the
epoch loop (extract -> cluster -> memory -> train -> evaluate), ``examples/options.py`` the flags.

    cdsm.datasets   Market-1501, DukeMTMC-reID, MSMT17 loaders (one file each)
    cdsm.data       transforms, identity sampler, image reading, loaders
    cdsm.models     ResNet + GeM + BN neck, mean teacher
    cdsm.cluster    Jaccard + DBSCAN at eps and eps -+ gap, reliability criterion
    cdsm.memory     cluster memories (CMhybrid_v5 = CDSM's diversity memory) and variants
    cdsm.losses     ClusterNCE, the hybrid central/marginal loss
    cdsm.trainer    one training epoch
    cdsm.optim      Adam (one group per tensor, fused where possible) + StepLR
    cdsm.evaluation feature extraction, common_eval ranking
    cdsm.engine     run plumbing: run folder, set-up, resume_or_load, torchrun, checkpoints, results
    cdsm.extractor  FeatureExtractor: features of any images from a checkpoint (also cdsm.FeatureExtractor)
"""
__version__ = "1.0.0"

from .extractor import FeatureExtractor, list_inputs  # noqa: E402  (the public API for trained models)

__all__ = ["FeatureExtractor", "list_inputs", "__version__"]
