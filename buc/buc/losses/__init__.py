from .exclusive_loss import ExLoss

__all__ = ["ExLoss"]
