"""Data pipeline: transforms, the identity sampler, image reading and the loaders."""
from .loaders import IterLoader, build_test_loader, build_train_loader
from .preprocessor import ImageDataset, read_image
from .sampler import DistributedBatchSampler, RandomMultipleGallerySampler
from .transforms import build_test_transform, build_train_transform

__all__ = ["IterLoader", "build_test_loader", "build_train_loader", "ImageDataset", "read_image",
           "RandomMultipleGallerySampler", "DistributedBatchSampler", "build_test_transform",
           "build_train_transform"]
