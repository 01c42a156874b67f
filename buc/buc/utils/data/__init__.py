from .preprocessor import CorruptImageError, Preprocessor, collate, sample_frames

__all__ = ["CorruptImageError", "Preprocessor", "collate", "sample_frames"]
