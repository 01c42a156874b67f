"""Data pipeline: per-frame transforms, clip sampling, the identity sampler, the loaders."""
from .loaders import IterLoader, build_train_loader
from .sampler import RandomMultipleGallerySampler
from .transforms import RandomErasing, build_test_transform, build_train_transform
from .video import ClipDataset, FrameDataset, FrameReader, clip_indices, read_image

__all__ = ["IterLoader", "build_train_loader", "RandomMultipleGallerySampler", "RandomErasing",
           "build_test_transform", "build_train_transform", "ClipDataset", "FrameDataset", "FrameReader",
           "clip_indices", "read_image"]
