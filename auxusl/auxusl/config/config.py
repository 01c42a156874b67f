"""fast-reid's extended yacs CfgNode: ``_BASE_`` inheritance in YAML files, clear errors.

    cfg = get_cfg()                                   # the defaults (defaults.py)
    cfg.merge_from_file("configs/USL_MTCluster.yml")  # may name a _BASE_ file, relative to it
    cfg.merge_from_list(["OPTIM.EPOCHS", "10"])       # KEY VALUE pairs from the command line
    cfg.freeze()

``setup_cfg`` does the three steps and turns yacs's errors (a key that does not exist, a value
of another type, an odd number of overrides) into one ``ConfigError`` line naming the key.
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path

import yaml
from yacs.config import CfgNode as _CfgNode

from ..errors import ConfigError

BASE_KEY = "_BASE_"


class CfgNode(_CfgNode):
    """yacs CfgNode whose YAML files may inherit from a ``_BASE_`` file (relative to them)."""

    @staticmethod
    def load_yaml_with_base(filename, _seen=()) -> dict:
        path = Path(filename)
        if str(path.resolve()) in _seen:
            raise ConfigError(f"{filename}: _BASE_ files include each other in a loop")
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {filename} ({exc.strerror or exc})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {filename} is not valid YAML ({exc})") from None
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {filename} must hold a mapping of KEY: value")
        if BASE_KEY not in data:
            return data
        base = str(data.pop(BASE_KEY))
        base = os.path.expanduser(base)
        if not os.path.isabs(base):
            base = str(path.parent / base)
        merged = CfgNode.load_yaml_with_base(base, _seen + (str(path.resolve()),))

        def merge_into(a: dict, b: dict, prefix: str) -> None:
            for k, v in a.items():
                if isinstance(v, dict) and k in b:
                    if not isinstance(b[k], dict):
                        raise ConfigError(f"{filename}: cannot inherit key '{prefix}{k}' from {base}")
                    merge_into(v, b[k], f"{prefix}{k}.")
                else:
                    b[k] = v

        merge_into(data, merged, "")
        return merged

    def merge_from_file(self, cfg_filename, allow_unsafe: bool = False) -> None:
        loaded = type(self)(CfgNode.load_yaml_with_base(cfg_filename))
        self.merge_from_other_cfg(loaded)

    def merge_from_other_cfg(self, cfg_other) -> None:
        if BASE_KEY in cfg_other:
            raise ConfigError(f"the key {BASE_KEY} is only allowed in YAML files")
        super().merge_from_other_cfg(cfg_other)


def get_cfg() -> CfgNode:
    """A fresh copy of the defaults."""
    from .defaults import _C

    return _C.clone()


def all_keys(node, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        if isinstance(v, _CfgNode):
            keys.extend(all_keys(v, f"{prefix}{k}."))
        else:
            keys.append(f"{prefix}{k}")
    return keys


def _unknown_key_message(full_key: str, where: str) -> str:
    close = difflib.get_close_matches(full_key, all_keys(get_cfg()), n=3, cutoff=0.75)
    hint = f"; did you mean {' or '.join(close)}?" if close else " (see auxusl/config/defaults.py)"
    return f"unknown config key '{full_key}' {where}{hint}"


def _explain(exc: Exception, where: str) -> str:
    text = str(exc).strip().strip("'\"")
    for marker in ("Non-existent config key: ", "Non-existent key: "):
        if marker in text:
            return _unknown_key_message(text.split(marker, 1)[1].strip(), where)
    if text.startswith("Type mismatch"):
        return f"{text} ({where})"
    if "odd length" in text:
        return f"the KEY VALUE overrides {where} have an odd number of items: each key needs a value"
    return f"{text} ({where})"


def setup_cfg(config_file: str | None, opts=(), *, freeze: bool = True, base: dict | None = None) -> CfgNode:
    """defaults -> ``base`` (a stored configuration, e.g. a checkpoint's) -> config_file (with
    _BASE_) -> KEY VALUE pairs; ConfigError on bad input."""
    cfg = get_cfg()
    if base:
        try:
            cfg.merge_from_other_cfg(CfgNode(base))
        except ConfigError:
            raise
        except (KeyError, AssertionError, ValueError, TypeError) as exc:
            raise ConfigError(_explain(exc, "in the checkpoint's stored configuration")) from None
    if config_file:
        try:
            cfg.merge_from_file(config_file)
        except ConfigError:
            raise
        except (KeyError, AssertionError, ValueError, TypeError) as exc:
            raise ConfigError(_explain(exc, f"in {config_file}")) from None
    opts = list(opts or [])
    if opts:
        try:
            cfg.merge_from_list(opts)
        except (KeyError, AssertionError, ValueError, TypeError) as exc:
            raise ConfigError(_explain(exc, "on the command line")) from None
    check_finite(cfg)
    if freeze:
        cfg.freeze()
    return cfg


def check_finite(node, prefix: str = "") -> None:
    """Every float of the merged tree (defaults, YAML presets, KEY VALUE pairs) is finite:
    'inf', 'nan', '1e999' are refused with a ConfigError naming the key."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            check_finite(value, name + ".")
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for v in items:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{name} {value!r} is not a finite number; give a finite value")
