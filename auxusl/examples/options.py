"""The command line of examples/train.py and examples/test.py: fast-reid's flags, the yacs
``KEY VALUE`` pairs, and the repository's common vocabulary beside them (``--data-root``,
``--logs-dir``, ``--checkpoint``; the original's keys win when both are given)."""

from __future__ import annotations

import argparse

from auxusl.config import setup_cfg
from auxusl.errors import ConfigError

# the repository's common vocabulary, beside the original's keys (which win when both are given)
ALIAS_FLAGS = {"--data-root": "DATASETS.DIR", "--logs-dir": "OUTPUT_DIR", "--checkpoint": "RESUME"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="AuxUSL training (fast-reid style: a config file and KEY VALUE pairs)"
    )
    p.add_argument(
        "--config-file", default="configs/USL_MTCluster.yml", metavar="FILE", help="path to config file"
    )
    p.add_argument("--finetune", action="store_true", help="accepted and ignored, as in the original")
    p.add_argument("--resume", action="store_true", help="ignored, as in the original: use the RESUME key")
    p.add_argument(
        "--eval-only", action="store_true", help="ignored, as in the original: use TEST.EVAL_ONLY True"
    )
    p.add_argument("--num-gpus", type=int, default=1, help="accepted and ignored, as in the original")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration (defaults, config file, aliases, KEY VALUE pairs) as "
        "YAML and exit without reading data or writing anything",
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE pairs that override the config")
    return p


def split_aliases(argv):
    """Takes the alias flags (anywhere, also after KEY VALUE pairs) out of argv: (argv, opts)."""
    rest, opts, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in ALIAS_FLAGS:
            if "=" in a:
                value = a.split("=", 1)[1]
            elif i + 1 < len(argv):
                value, i = argv[i + 1], i + 1
            else:
                raise ConfigError(f"{name} needs a value")
            opts += [ALIAS_FLAGS[name], repr(value)]
            i += 1
            continue
        rest.append(a)
        i += 1
    return rest, opts


def setup(argv, parser=None, base=None):
    """(cfg, args): defaults, ``base`` (a checkpoint's stored configuration), the config file, the
    aliases, then the KEY VALUE pairs."""
    argv, alias_opts = split_aliases(argv)
    print_config = "--print-config" in argv  # also after the KEY VALUE pairs
    argv = [a for a in argv if a != "--print-config"] + (["--print-config"] if print_config else [])
    args = (parser or build_parser()).parse_args(argv[-1:] + argv[:-1] if print_config else argv)
    cfg = setup_cfg(args.config_file, alias_opts + list(args.opts), base=base)
    return cfg, args
