"""The command line of examples/train.py: the original's flags and defaults, the YAML presets of
../configs (loaded as argparse defaults, later flags win), the checks of each value and K, and what
--print-config prints / --resume compares. Nothing here reads data or writes logs."""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from pathlib import Path

import yaml

import pul  # noqa: F401  (sets KERAS_BACKEND=tensorflow before keras is imported)
from pul import PULError
from pul.datasets import NAMES, NUM_CLUSTERS, canonical_name
from pul.runfiles import finite_float
from pul.selection import RULES

DESCRIPTION = "PUL: the supervised source baseline, then progressive unsupervised learning on the target."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", action="append", default=[], metavar="YAML",
                   help="preset file(s) loaded as defaults (configs/*.yaml); later ones win")
    g = p.add_argument_group("run")
    g.add_argument("--mode", choices=("baseline", "unsupervised", "semi"), default="unsupervised")
    g.add_argument("--dataset", help=f"training set of the baseline, or the PUL target ({', '.join(NAMES)})")
    g.add_argument("--data-root", default=os.environ.get("REID_DATA", "data"),
                   help="folder holding the dataset folder (Market-1501-v15.09.15/ etc.)")
    g.add_argument("--source", help="labelled source dataset of the baseline (unsupervised/semi modes)")
    g.add_argument("--source-root", help="data root of the source (default: --data-root)")
    g.add_argument("--baseline", help="baseline model (.keras) to start PUL from; default "
                                      "LOGS/baseline/0.keras, trained on --source when absent")
    g.add_argument("--logs-dir", default="logs/pul", help="log folder of this run")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --logs-dir (the command's settings must be the run's)")
    g.add_argument("--print-config", action="store_true",
                   help="[added] print the resolved configuration (presets, flags, K) as YAML and exit")
    g.add_argument("--scale", choices=("paper", "smoke", "rehearsal"), default="paper",
                   help="recorded in results.json")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--deterministic", action="store_true",
                   help="tf.config.experimental.enable_op_determinism() (exact resume on CPU)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--workers", type=int, default=4, help="threads reading images")
    g.add_argument("--mirror-cpus", type=int, default=0, metavar="N",
                   help="[added] MirroredStrategy over N logical CPU devices (the multi-GPU path without "
                        "GPUs, for testing); several visible GPUs are mirrored without it")
    g = p.add_argument_group("network and input")
    g.add_argument("--arch", choices=("resnet50", "resnet18"), default="resnet50",
                   help="resnet50 = Keras' ResNet50 (the original); resnet18 = the CPU smoke backbone")
    g.add_argument("--pretrained", default="imagenet",
                   help="'imagenet' (Keras cache, downloaded if online), 'none' (random init) or a "
                        "weights file")
    g.add_argument("--height", type=int, default=224)
    g.add_argument("--width", type=int, default=224)
    g.add_argument("--last-stride", type=int, default=2, choices=(1, 2), help="resnet18 only")
    g.add_argument("--base-width", type=int, default=64,
                   help="resnet18 only: stage widths base x (1, 2, 4, 8); 64 = the standard ResNet-18")
    g.add_argument("--dropout", type=finite_float, default=0.5)
    g = p.add_argument_group("optimisation (baseline and every PUL fine-tuning)")
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=finite_float, default=0.001, help="SGD learning rate (no decay)")
    g.add_argument("--momentum", type=finite_float, default=0.9)
    g.add_argument("--baseline-epochs", type=int, default=40)
    g.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="[added] at most N batches per epoch (baseline and PUL; the rehearsal's 20); "
                        "default: the original's ceil(n/16 + 1)")
    g.add_argument("--baseline-lr", type=finite_float, default=None,
                   help="learning rate of the baseline (default: --lr, as the original)")
    g.add_argument("--rotation", type=finite_float, default=20.0,
                   help="augmentation rotation range (degrees)")
    g.add_argument("--shift", type=finite_float, default=0.2, help="augmentation width/height shift range")
    g = p.add_argument_group("PUL")
    g.add_argument("--iterations", type=int, default=25, help="PUL iterations (START=1 .. END)")
    g.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs per iteration (NUM_EPOCH)")
    g.add_argument("--lambda", dest="lam", type=finite_float, default=0.85,
                   help="reliability threshold (cosine)")
    g.add_argument("--selection", choices=RULES, default="code",
                   help="code: close to ANY centre image, own k-means label (the original's code); "
                        "paper: close to the centroid of its own cluster")
    g.add_argument("--num-clusters", default=None,
                   help="k-means K; default per target as the original (market 750, duke 700, cuhk03 750; "
                        "semi: --num-ids minus --known); 'auto' = the target's true identity count")
    g.add_argument("--kmeans-n-init", type=int, default=10)
    g.add_argument("--kmeans-max-iter", type=int, default=300)
    g.add_argument("--kmeans", choices=("sklearn", "faiss"), default="sklearn",
                   help="[added] k-means implementation: sklearn = scikit-learn's KMeans (k-means++, the "
                        "original's); faiss = faiss.Kmeans (its k-means++, nredo = --kmeans-n-init, niter = "
                        "--kmeans-max-iter, float32), faster at paper size (see README)")
    g.add_argument("--known", type=int, default=50, help="semi: labelled target identities (KNOWN)")
    g.add_argument("--num-ids", type=int, default=None, help="semi: classifier width (NUM_IDS, default 750 "
                                                             "as the original for market/cuhk03, 700 duke)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-every", type=int, default=1,
                   help="evaluate the target every N iterations (0: only the last); the original "
                        "evaluated every checkpoint")
    g.add_argument("--eval-batch-size", type=int, default=64)
    g.add_argument("--cache-eval-images", action="store_true",
                   help="keep query/gallery images in memory between evaluations")
    g.add_argument("--keep-checkpoints", choices=("all", "last"), default="all",
                   help="keep every iteration's model (the original) or only the last")
    return p


def given_on_command_line(parser: argparse.ArgumentParser, argv) -> set[str]:
    """The dests the command line sets itself (not from a default or a preset)."""
    saved = {a.dest: a.default for a in parser._actions}
    try:
        for a in parser._actions:
            a.default = argparse.SUPPRESS
        ns, _ = parser.parse_known_args(argv)
    finally:
        for a in parser._actions:
            a.default = saved[a.dest]
    return set(vars(ns))


def parse_args(argv=None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    parser = build_parser()
    # preset keys are the long flag names (lambda, num-clusters or num_clusters)
    dest_of = {o[2:].replace("-", "_"): a.dest for a in parser._actions for o in a.option_strings
               if o.startswith("--")}
    for path in known.config:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            parser.error(f"cannot read the preset {path}: {exc}")
        unknown = sorted(k for k in values if str(k).replace("-", "_") not in dest_of)
        if unknown:
            parser.error(f"preset {path}: unknown setting(s) {', '.join(unknown)}")
        parser.set_defaults(**{dest_of[str(k).replace("-", "_")]: v for k, v in values.items()})
    args = parser.parse_args(argv)
    explicit = given_on_command_line(build_parser(), argv)
    for key, value in vars(args).items():   # presets too: no inf/nan anywhere
        if isinstance(value, float) and not math.isfinite(value):
            parser.error(f"--{key.replace('_', '-')}: {value!r} is not a finite number")
    if args.dataset is None:
        parser.error("--dataset is required (the baseline's training set, or the PUL target)")
    try:
        args.dataset = canonical_name(args.dataset)
        if args.source:
            args.source = canonical_name(args.source)
    except PULError as exc:
        parser.error(str(exc))
    if args.source and args.source == args.dataset and args.mode != "baseline":
        parser.error("--source and --dataset must differ: PUL adapts a source model to another target")
    for name in ("batch_size", "baseline_epochs", "iterations", "epochs", "height", "width",
                 "eval_batch_size", "kmeans_n_init", "kmeans_max_iter", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_steps is not None and args.max_steps < 1:
        parser.error("--max-steps must be >= 1")
    if not 0 <= args.dropout < 1:
        parser.error("--dropout must be in [0, 1)")
    if args.known < 0:
        parser.error("--known must be >= 0")
    # ---- K: resolved here, so that --print-config shows it and a wrong one stops before any training
    semi = args.mode == "semi"
    if semi and args.num_ids is None:   # NUM_IDS of semi-supervised.py (750; Duke has 702 ids: 700)
        args.num_ids = 700 if args.dataset == "dukemtmcreid" else 750
    k = args.num_clusters
    if args.mode == "baseline":
        k = None                         # the baseline does not cluster
    elif str(k) == "auto":
        pass                             # the target's identity count, known when it is listed
    elif semi and ("num_clusters" not in explicit or k in (None, "default")):
        # semi-supervised.py: NUM_CLUSTER = NUM_IDS - KNOWN (750 - 50 = 700); the presets'
        # num_clusters is the unsupervised K of that target and does not apply
        k = args.num_ids - args.known
    elif k in (None, "default"):
        k = NUM_CLUSTERS[args.dataset]
    if k is not None and str(k) != "auto":
        try:
            k = int(k)
        except (TypeError, ValueError):
            parser.error(f"--num-clusters must be an integer, 'auto' or 'default', got {k!r}")
        if k < 1:
            parser.error(f"--num-clusters must be >= 1, got {k}")
        if semi and args.num_ids < args.known + k:
            parser.error(f"--num-ids {args.num_ids} is smaller than --known {args.known} + K {k}: the "
                         f"classifier needs a column for every known identity and every cluster "
                         f"(semi-supervised.py: K = NUM_IDS - KNOWN = {args.num_ids - args.known})")
    args.num_clusters = k
    if args.baseline_lr is None:
        args.baseline_lr = args.lr
    if args.baseline:
        args.baseline = str(Path(args.baseline).resolve())
    args.command = "python examples/train.py " + " ".join(shlex.quote(a) for a in argv)
    args._config = run_config(args)   # as resolved from the command (main may fill in the source later)
    return args


# what --resume may change: where things are, how they are read, how progress is shown (not what is
# computed: eval frequency, seeds, schedule, K ... are compared)
PLUMBING = {"logs_dir", "data_root", "source_root", "resume", "workers", "no_progress", "mirror_cpus",
            "eval_batch_size", "cache_eval_images", "config", "command", "print_config"}


def config_yaml(config: dict) -> str:
    """The configuration as YAML text (--print-config, config.yaml)."""
    return yaml.safe_dump(config, sort_keys=True)


def run_config(args) -> dict:
    """The resolved configuration (what --print-config prints and results.json records)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "print_config"}
