"""3C's flags: the original's (``CCC/configs/config.py``) with their defaults, the added ones, the
YAML presets (``--config FILE``, repeatable, loaded as defaults: keys = the flags' names with
underscores; flags on the command line override them), the aliases of the wrapper's vocabulary
(``--data-root``, ``--logs-dir``, ``market``) and ``--print-config``. The package (``ccc``) never
sees argparse or YAML: examples/train.py hands it plain values.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import yaml

from ccc import datasets, models
from ccc.hdc import INITS, SIMILARITIES
from ccc.memory import names as memory_names
from ccc.trainer import AMP_DTYPES
from ccc.utils.runfiles import finite_float

TARGET = {"market1501": "market", "msmt17": "msmt17", "veri": "veri"}
CLUSTERS = ("hdc", "dbscan", "kmeans")
DEFAULT_LOG_DIR = {"hdc": "logs/log", "dbscan": "logs/log_dbscan", "kmeans": "logs/log_kmeans"}
NOT_IN_CONFIG = ("config", "resume", "print_config")
# run plumbing: what --resume lets a command change (README, "Runs and resume")
MAY_CHANGE = ("log_dir", "ckpt_dir", "root_dir", "num_workers", "num_threads", "device", "print_freq",
              "no_progress", "notes")
DATASET_ALIASES = {"market": "market1501"}   # the wrapper's short names [added]


def none_or(kind):
    def parse(text):
        return None if text in (None, "None", "none", "") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def dataset_name(text: str) -> str:
    return DATASET_ALIASES.get(text, text)


# ------------------------------------------------------------------------------------ flags
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="3C: confidence-guided clustering and contrastive learning for unsupervised re-ID",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="YAML preset(s) loaded as defaults, in order (e.g. configs/hdc/market.yml)")
    p.add_argument("--cluster", type=str, default="hdc", choices=CLUSTERS,
                   help="[added] which of 3C's entry points: hdc (main.py), dbscan (main_dbscan.py), "
                        "kmeans (main_kmeans.py)")
    p.add_argument("--notes", type=str, default="")
    g = p.add_argument_group("model")
    g.add_argument("--arch", type=str, default="resnet50", choices=models.names(),
                   help="resnet50/101, resnet_ibn50a/101a (resnet18/34 [added] for the smoke preset)")
    g.add_argument("--resnet-pretrained", type=str, default="V1", choices=("V1", "V2"),
                   help="torchvision ImageNet weights IMAGENET1K_V1 or _V2 (IBN models: their own)")
    g.add_argument("--pretrained", type=str, default="imagenet",
                   help="[added] 'imagenet' (--resnet-pretrained), 'none' (random init) or a state-dict path")
    g.add_argument("--pooling-type", type=str, default="gem", choices=("avg", "gem"))
    g = p.add_argument_group("data")
    g.add_argument("--root-dir", "--data-root", dest="root_dir", type=str,
                   default=str(Path.home() / "Dataset"),
                   help="folder holding Market-1501-v15.09.15/, MSMT17_V1/, VeRi/ (--data-root [added]: "
                        "alias)")
    g.add_argument("--dataset", type=dataset_name, default="market1501", choices=datasets.names(),
                   help="(market [added]: alias of market1501)")
    g.add_argument("--height", type=int, default=256)
    g.add_argument("--width", type=int, default=128)
    g.add_argument("--pad", type=int, default=10, help="[added] padding before the random crop (3C: 10)")
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--num-instances", type=int, default=16, help="images per pseudo-id in a batch")
    g.add_argument("--num-workers", type=int, default=32, help="DataLoader workers (and DBSCAN jobs)")
    g.add_argument("--no-cam", action="store_true", help="camera-agnostic identity sampler")
    g = p.add_argument_group("memory and loss")
    g.add_argument("--loss-with-camera", action=argparse.BooleanOptionalAction, default=False,
                   help="CIE: camera-entropy loss weighting (--no-... [added] turns a preset's off)")
    g.add_argument("--cm-mode", type=str, default="hd_camera", choices=memory_names(),
                   help="memory update: cm = Vanilla, cm_hard = Hard, tccl_camera = TCCL, hd_camera = CHD "
                        "(cm_camera, cm_hard_camera: in 3C's code, not its command line)")
    g.add_argument("--cm-temperature", type=finite_float, default=0.05)
    g.add_argument("--cm-momentum", type=finite_float, default=0.1)
    g = p.add_argument_group("clustering")
    g.add_argument("--num-clusters", type=int, default=750, help="K of HDC / k-means")
    g.add_argument("--dbscan-eps", type=finite_float, default=0.6)
    g.add_argument("--cluster-min-instances", type=int, default=4,
                   help="DBSCAN min_samples; smaller HDC / k-means clusters become outliers")
    g.add_argument("--warmup-with-dbscan", action=argparse.BooleanOptionalAction, default=False,
                   help="DBSCAN instead of HDC / k-means for the first --warmup-iters epochs")
    g.add_argument("--hdc-camera-version", type=none_or(str), default=None,
                   help="only None is wired up in 3C")
    g.add_argument("--threshold", type=none_or(finite_float), default=None,
                   help="fixed POD threshold (None: mean + std)")
    g.add_argument("--hdc-similarity", type=str, default="Euler Cosine", choices=SIMILARITIES)
    g.add_argument("--hdc-max-iter", type=int, default=80)
    g.add_argument("--hdc-init", type=str, default="k-means++2", choices=INITS)
    g.add_argument("--hdc-normalize", action="store_true", help="L2-normalise HDC's centroids")
    g.add_argument("--hdc-centroids", action=argparse.BooleanOptionalAction, default=False,
                   help="memory from HDC's centroids (else the post-processed member means)")
    g.add_argument("--hdc-outlier", action=argparse.BooleanOptionalAction, default=False,
                   help="HDC's peripheral samples become outliers")
    g.add_argument("--no-jaccard", action="store_true", help="HDC on the feature distance, not Jaccard")
    g.add_argument("--jaccard-k1", type=int, default=30)
    g.add_argument("--jaccard-k2", type=int, default=6)
    g = p.add_argument_group("schedule")
    g.add_argument("--seed", type=int, default=999)
    g.add_argument("--num-epochs", type=int, default=70)
    g.add_argument("--iters", type=int, default=200)
    g.add_argument("--lr", type=finite_float, default=3.5e-4)
    g.add_argument("--lr-weight-decay", type=finite_float, default=5e-4)
    g.add_argument("--lr-steps", type=int, default=20)
    g.add_argument("--lr-gamma", type=finite_float, default=0.1)
    g.add_argument("--warmup-version", type=str, default="v1", choices=("v1", "v2"))
    g.add_argument("--warmup-iters", type=int, default=10, help="epochs of LR warm-up (and DBSCAN warm-up)")
    g.add_argument("--warmup-factor", type=finite_float, default=0.1)
    g.add_argument("--warmup-lr-factor", type=finite_float, default=1.0, help="v2 only")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-start-epoch", type=int, default=0)
    g.add_argument("--eval-step-epoch", type=int, default=5)
    g.add_argument("--eval-and-ckpt", action="store_true", help="also save the model at every evaluation")
    g.add_argument("--eval-dist", type=none_or(str), default=None, choices=(None, "Euclidean", "Cosine"),
                   help="None = squared Euclidean")
    g.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking at evaluation")
    g = p.add_argument_group("run")
    g.add_argument("--log-dir", "--logs-dir", dest="log_dir", type=str, default=None,
                   help="the run's folder (log.txt, config, TensorBoard, results.json); default "
                        "logs/log, logs/log_dbscan or logs/log_kmeans as the original's scripts")
    g.add_argument("--ckpt-dir", type=str, default=None, help="checkpoints (default: the log folder)")
    g.add_argument("--resume", type=str, metavar="PATH", default="",
                   help="[added] checkpoint.pth.tar of a run to continue")
    g.add_argument("--bn-slices", type=int, default=2,
                   help="[added] ghost BatchNorm: in training, BN statistics per 1/K of the global batch "
                        "and running statistics from the first part, as 3C's nn.DataParallel on K GPUs "
                        "(3C: 2); 1 = whole-batch BN. Under torchrun each of N processes uses K / N")
    g.add_argument("--dp-splits", type=int, default=None,
                   help="[added] deprecated alias of --bn-slices")
    g.add_argument("--amp", type=str, default="off", choices=tuple(AMP_DTYPES),
                   help="[added] mixed-precision training forward (torch.autocast); loss and memory in fp32")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="[added] channels_last memory format for the model and training images")
    g.add_argument("--device", type=str, default="auto", help="[added] auto, cpu, cuda, cuda:N")
    g.add_argument("--num-threads", type=int, default=None, help="[added] torch CPU and HDC kernel threads")
    g.add_argument("--print-freq", type=int, default=50, help="[added] log every N iterations (0: never)")
    g.add_argument("--scale", type=str, default="paper", choices=("paper", "smoke", "rehearsal"),
                   help="[added] recorded in results.json")
    g.add_argument("--no-progress", action="store_true", help="[added] no tqdm bars")
    g.add_argument("--print-config", action="store_true",
                   help="[added] print the resolved configuration (presets, aliases and flags applied) as "
                        "YAML and exit, touching neither data nor logs")
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
    for key, value in vars(args).items():   # YAML presets bypass the flags' types: .inf, .nan
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{key.replace('_', '-')}: {value!r} is not a finite number")
    if args.log_dir is None:
        args.log_dir = DEFAULT_LOG_DIR[args.cluster]
    if args.hdc_camera_version is not None:
        parser.error(f"--hdc-camera-version {args.hdc_camera_version}: only None is wired up in 3C (its "
                     "camera versions of HDC are commented out of the released code)")
    if not 0 < args.dbscan_eps < 1:
        parser.error(f"--dbscan-eps must be in (0, 1) (the Jaccard distance lies in [0, 1]), "
                     f"got {args.dbscan_eps}")
    if args.dp_splits is not None:
        print(f"WARNING: --dp-splits is deprecated: use --bn-slices {args.dp_splits} (ghost BatchNorm)",
              file=sys.stderr)
        args.bn_slices = args.dp_splits
    del args.dp_splits
    for name in ("num_epochs", "iters", "batch_size", "eval_step_epoch", "bn_slices"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    world = int(os.environ.get("WORLD_SIZE", "1"))   # torchrun's number of processes
    if args.batch_size % world:
        parser.error(f"--batch-size {args.batch_size} is not divisible by the {world} processes (each takes "
                     f"an equal slice of the global batch): use a multiple of {world}")
    if args.bn_slices % world:
        parser.error(f"--bn-slices {args.bn_slices} is not a multiple of the {world} processes (each "
                     f"normalises --bn-slices / {world} slices of its part): use --bn-slices {world} or a "
                     "multiple of it")
    if args.cluster_min_instances < 1:
        parser.error("--cluster-min-instances must be at least 1")
    return args


def config_of(args) -> dict:
    """The run's configuration: every flag but --config, --resume and --print-config (config.yaml,
    the checkpoints' "args", results.json's "config", the --resume comparison)."""
    return {k: v for k, v in vars(args).items() if k not in NOT_IN_CONFIG}


def print_config(args) -> int:
    """--print-config: the resolved configuration as YAML on stdout; touches neither data nor logs."""
    sys.stdout.write(yaml.safe_dump(config_of(args), sort_keys=True))
    return 0
