"""CDSM's flags: the original's (``CDSM/examples/train.py``) with their defaults, the added ones
(marked [added]), the YAML presets (``--config FILE``, repeatable, loaded as defaults: keys = the
flags' names with underscores; flags on the command line override them), the aliases of the
wrapper's vocabulary (``--data-root``, ``-d market|duke``) and ``--print-config``. The package
(``cdsm``) never sees argparse or YAML: examples/train.py hands it plain values.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

from cdsm import datasets, models
from cdsm.memory import names as memory_names
from cdsm.memory import resolve_name
from cdsm.utils.runfiles import atomic_write, finite_float

HERE = Path(__file__).resolve().parent
NOT_IN_CONFIG = ("config", "resume", "resume_ema", "print_config")
# run plumbing: may differ between a checkpoint and the command that resumes it (all else may not)
MAY_CHANGE = ("data_dir", "logs_dir", "workers", "num_threads", "device", "no_progress", "print_freq")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="CDSM: cluster-aware diversity samples mining for unsupervised person re-ID",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="YAML preset(s) loaded as defaults, in order (e.g. configs/market.yml)")
    p.add_argument("--print-config", action="store_true",
                   help="[added] print the resolved configuration (presets, aliases, flags) as YAML and exit")
    g = p.add_argument_group("data")
    g.add_argument("-d", "--dataset", type=datasets.dataset_arg, default="dukemtmcreid",
                   choices=datasets.names(),
                   help="the original's names, or [added] market, duke")
    g.add_argument("-b", "--batch-size", type=int, default=2)
    g.add_argument("-j", "--workers", type=int, default=4)
    g.add_argument("--height", type=int, default=256, help="input height")
    g.add_argument("--width", type=int, default=128, help="input width")
    g.add_argument("--num-instances", type=int, default=4,
                   help="images per pseudo-id in a batch (batch = batch_size / num_instances ids)")
    g.add_argument("--mem-instances", type=int, default=2, help="marginal proxies per cluster (K)")
    g.add_argument("--pad", type=int, default=10, help="[added] padding before the random crop")
    g = p.add_argument_group("cluster")
    g.add_argument("--eps", type=finite_float, default=0.5, help="DBSCAN radius on the Jaccard distance")
    g.add_argument("--eps-gap", type=finite_float, default=0.02,
                   help="tight/loose radii eps -+ gap (reliability)")
    g.add_argument("--k1", type=int, default=30, help="Jaccard distance k1")
    g.add_argument("--k2", type=int, default=6, help="Jaccard distance k2")
    g.add_argument("-rho", type=finite_float, default=2e-3,
                   help="unused by the original (kept for its commands)")
    g.add_argument("--min-samples", type=int, default=4, help="[added] DBSCAN min_samples (original: 4)")
    g = p.add_argument_group("model")
    g.add_argument("-a", "--arch", type=str, default="resnet50", choices=models.names())
    g.add_argument("--pretrained", type=str, default="imagenet",
                   help="[added] 'imagenet' (torchvision IMAGENET1K_V1), 'none' (random init) or a path")
    g.add_argument("--features", type=int, default=0, help="embedding size (0: none, 2048-D BN feature)")
    g.add_argument("--dropout", type=finite_float, default=0)
    g.add_argument("--smooth", type=finite_float, default=0, help="> 0: label smoothing (epsilon 0.1)")
    g.add_argument("--hard-weight", type=finite_float, default=0.5,
                   help="weight w of the marginal (hard) term")
    g.add_argument("--momentum", type=finite_float, default=0.1, help="memory update momentum m")
    g.add_argument("--pooling-type", type=str, default="gem", choices=("gem", "avg"))
    g.add_argument("--bn-slices", type=int, default=4,
                   help="[added] ghost BatchNorm: training BN statistics per slice of K equal parts of the "
                        "batch, as nn.DataParallel on K GPUs (4: HHCL's GPUs, CDSM's parent; 1 = plain BN)")
    g.add_argument("--amp", type=str, default="off", choices=("off", "bf16", "fp16"),
                   help="[added] mixed precision for the forward passes (GPU runs; fp32 when off)")
    g.add_argument("--channels-last", action="store_true", help="[added] channels_last memory format")
    g.add_argument("-mb", "--memorybank", type=str, default="CM",
                   help=f"one of {', '.join(memory_names())} (CMhybrid_v5 = CDSM; 'CMhybird_v5' accepted)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--lr", type=finite_float, default=0.00035, help="Adam learning rate")
    g.add_argument("--weight-decay", type=finite_float, default=5e-4)
    g.add_argument("--epochs", type=int, default=50)
    g.add_argument("--iters", type=int, default=400)
    g.add_argument("--step-size", type=int, default=20, help="StepLR: lr x 0.1 every step-size epochs")
    g.add_argument("--ema-decay", type=finite_float, default=0.999, help="[added] largest mean-teacher decay")
    g = p.add_argument_group("training")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--print-freq", type=int, default=20)
    g.add_argument("--eval-step", type=int, default=1)
    g.add_argument("--temp", type=finite_float, default=0.05, help="temperature tau")
    g.add_argument("--device", type=str, default="auto", help="[added] auto, cpu, cuda, cuda:N")
    g.add_argument("--num-threads", type=int, default=None, help="[added] torch CPU threads")
    g.add_argument("--scale", type=str, default="paper", choices=("paper", "smoke", "rehearsal"),
                   help="[added] recorded in results.json")
    g.add_argument("--no-progress", action="store_true", help="[added] no tqdm bars")
    g = p.add_argument_group("paths")
    g.add_argument("--data-dir", type=str, metavar="PATH", default=str(HERE / "data"),
                   help="folder holding Market-1501-v15.09.15/ etc. (or <name>/<folder> as the original)")
    g.add_argument("--data-root", dest="data_dir", type=str, metavar="PATH", default=argparse.SUPPRESS,
                   help="[added] the same as --data-dir (./reproduce.sh's name)")
    g.add_argument("--logs-dir", type=str, metavar="PATH", default=str(HERE / "logs"))
    g.add_argument("--resume", type=str, metavar="PATH", default="",
                   help="checkpoint.pth.tar of a run to continue (original CDSM checkpoint: student weights)")
    g.add_argument("--resume-ema", type=str, metavar="PATH", default="",
                   help="an original CDSM checkpoint whose weights initialise the teacher")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    dests = {a.dest for a in parser._actions}
    defaults = {}
    for path in known.config:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            parser.error(f"cannot read --config {path}: {exc}")
        if not isinstance(data, dict):
            parser.error(f"--config {path}: expected a mapping of flag: value")
        for key, value in data.items():
            dest = str(key).replace("-", "_")
            if dest not in dests or dest in NOT_IN_CONFIG:
                parser.error(f"--config {path}: unknown key '{key}'")
            defaults[dest] = value
    parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    for action in parser._actions:  # presets too: a YAML '.inf' never reaches the run
        value = getattr(args, action.dest, None)
        if action.type is finite_float and isinstance(value, (int, float)) and not math.isfinite(value):
            parser.error(f"argument {'/'.join(action.option_strings)}: {value!r} is not a finite number")
    try:
        args.memorybank, args.memorybank_note = resolve_name(args.memorybank)
    except ValueError as exc:
        parser.error(str(exc))
    if args.bn_slices < 1:
        parser.error(f"--bn-slices must be >= 1, got {args.bn_slices}")
    if args.eps_gap >= args.eps or args.eps + args.eps_gap >= 1:
        parser.error(f"--eps {args.eps} and --eps-gap {args.eps_gap} must satisfy 0 < eps - gap and "
                     "eps + gap < 1")
    return args


def config_of(args) -> dict:
    """The resolved configuration: config.yaml, the checkpoints' 'args' and results.json's 'config'."""
    return {k: v for k, v in vars(args).items() if k not in NOT_IN_CONFIG and k != "memorybank_note"}


def config_yaml(args) -> str:
    return yaml.safe_dump(config_of(args), sort_keys=True)


def print_config(args) -> None:
    """--print-config: the configuration as YAML on stdout; nothing read, nothing written."""
    print(config_yaml(args), end="")


def write_config(logs_dir: Path, args) -> None:
    text = config_yaml(args)
    atomic_write(logs_dir / "config.yaml", lambda f: f.write(text.encode()))
