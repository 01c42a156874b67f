"""The video re-ID network and its EMA teacher."""

from .mean_teacher import create_teacher, ema_decay, update_teacher
from .resnet import BACKBONES, VideoResNet, create, names

__all__ = ["BACKBONES", "VideoResNet", "create", "names", "create_teacher", "ema_decay", "update_teacher"]
