from .exclusive_memory import ExclusiveMemory

__all__ = ["ExclusiveMemory"]
