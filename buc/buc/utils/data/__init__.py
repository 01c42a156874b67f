from .preprocessor import CorruptImageError, Preprocessor, sample_frames

__all__ = ["CorruptImageError", "Preprocessor", "sample_frames"]
