"""yacs configuration (fast-reid shape): the defaults tree, ``_BASE_`` files, KEY VALUE overrides."""

from .config import CfgNode, all_keys, get_cfg, setup_cfg

__all__ = ["CfgNode", "all_keys", "get_cfg", "setup_cfg"]
