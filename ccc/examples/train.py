"""3C training: the original's flags and defaults (``CCC/configs/config.py``), the epoch loop top
to bottom. One script for the three entry points of the original (``--cluster``):

    hdc     CCC/main.py         HDC, harmonic discrepancy clustering (3C)
    dbscan  CCC/main_dbscan.py  DBSCAN on the Jaccard distance every epoch
    kmeans  CCC/main_kmeans.py  k-means on the features

    python examples/train.py --cluster hdc --dataset market1501 --height 256 --width 128 \
        --num-clusters 750 --iters 200 --num-epochs 60 --warmup-iters 10 --warmup-with-dbscan \
        --dbscan-eps 0.6 --arch resnet50 --resnet-pretrained V1 --pooling-type gem --hdc-outlier \
        --hdc-centroids --hdc-init k-means++2 --cm-mode hd_camera --loss-with-camera \
        --root-dir $HOME/Dataset --log-dir logs/log
    python examples/train.py --config configs/hdc/market.yml --config configs/smoke.yml ...

(examples/main.py, main_dbscan.py and main_kmeans.py take the README's commands as written.)
``--config FILE`` (repeatable) loads YAML presets as defaults (keys = the flags' names with
underscores); flags on the command line override them. Each epoch:

  1. extract the features of the training set (eval mode)
  2. pseudo-labels: during the warm-up (``--warmup-with-dbscan``, epochs < ``--warmup-iters``) and
     in the DBSCAN variant, Jaccard + DBSCAN; otherwise Jaccard + HDC (or k-means), then the
     removal of clusters smaller than ``--cluster-min-instances``
  3. the cluster memory = L2norm(centroids); outliers leave the training set
  4. train ``--iters`` iterations (ClusterNCE, CIE weighting, the ``--cm-mode`` memory update)
  5. step the learning rate (WarmupMultiStepLR)
  6. evaluate after epoch 1 and every ``--eval-step-epoch`` epochs (and after the last one),
     keep the best (what 3C reports), write the checkpoint

Multi-GPU [added]: ``torchrun --nproc_per_node=N examples/train.py ...`` trains with
DistributedDataParallel (nccl on CUDA, one GPU per process; gloo on the CPU). Every rank extracts
its contiguous shard of the training set and the features are gathered in dataset order; rank 0
clusters and broadcasts the pseudo-labels (or its error); every rank draws the same global
batches and takes its 1/N slice; the memory is updated with the gathered global batch on every
rank (ccc/trainer.py); rank 0 alone evaluates and writes logs, TensorBoard, checkpoints and
results.json; the BN running statistics of rank 0 go to every rank after each epoch. A single
process (no torchrun) is unchanged.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from ccc import datasets, models
from ccc.cluster import dbscan_labels, jaccard_distance, kmeans_labels, member_means, remove_small_clusters
from ccc.data import build_test_loader, build_train_loader
from ccc.errors import CCCError, CheckpointError, ClusteringError, NoClusterError, short_message
from ccc.evaluation import NATIVE_AP, describe, evaluate_model, extract_features
from ccc.hdc import HDC, INITS, SIMILARITIES
from ccc.memory import create_memory
from ccc.memory import names as memory_names
from ccc.models.ghost_bn import set_ghost_bn
from ccc.trainer import AMP_DTYPES, train_one_epoch
from ccc.utils import distributed as du
from ccc.utils.checkpoint import FORMAT, load_checkpoint, load_model_state, save_checkpoint
from ccc.utils.logging import report_error, run_logging, tensorboard_writer
from ccc.utils.lr_scheduler import build_scheduler
from ccc.utils.runfiles import (
    atomic_write,
    check_fresh_folder,
    check_resume,
    disk_full_line,
    finite_float,
    remove_stale_tmp,
)
from ccc.utils.seed import get_rng_state, seed_everything, set_rng_state
from common_eval import EvaluationError
from common_eval.results import write_results

log = logging.getLogger("ccc.train")
HERE = Path(__file__).resolve().parent
TARGET = {"market1501": "market", "msmt17": "msmt17", "veri": "veri"}
CLUSTERS = ("hdc", "dbscan", "kmeans")
DEFAULT_LOG_DIR = {"hdc": "logs/log", "dbscan": "logs/log_dbscan", "kmeans": "logs/log_kmeans"}
NOT_IN_CONFIG = ("config", "resume", "print_config")
# run plumbing: what --resume lets a command change (README, "Runs and resume")
MAY_CHANGE = ("log_dir", "ckpt_dir", "root_dir", "num_workers", "num_threads", "device", "print_freq",
              "no_progress", "notes")
DATASET_ALIASES = {"market": "market1501"}   # the wrapper's short names [added]
STREAMS = {"cluster": 1, "sampler": 2, "augment": 3}   # independent seed streams per epoch


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
    g.add_argument("--scale", type=str, default="paper", choices=("paper", "smoke"),
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


# ---------------------------------------------------------------------------------- helpers
def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    return int(np.random.SeedSequence([seed, epoch, STREAMS[stream]]).generate_state(1)[0])


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(model, args):
    # one parameter group per tensor, as the original
    params = [{"params": [p]} for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr, weight_decay=args.lr_weight_decay)
    scheduler = build_scheduler(optimizer, args.warmup_version, args.warmup_iters, args.warmup_factor,
                                args.warmup_lr_factor, args.lr_steps, args.lr_gamma)
    return optimizer, scheduler


def config_of(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in NOT_IN_CONFIG}


def uses_dbscan(args, epoch: int) -> bool:
    return args.cluster == "dbscan" or (args.warmup_with_dbscan and epoch < args.warmup_iters)


def make_hdc(args) -> HDC:
    return HDC(args.num_clusters, max_iter=args.hdc_max_iter, init=args.hdc_init,
               normalize_centroid=args.hdc_normalize, similarity=args.hdc_similarity,
               threshold=args.threshold, num_threads=args.num_threads or os.cpu_count())


def pseudo_labels(features: np.ndarray, args, epoch: int):
    """The epoch's clustering: (labels with -1 = outlier, centroids C' x D, what was done)."""
    n = len(features)
    threads = args.num_threads or os.cpu_count()
    if uses_dbscan(args, epoch):
        dist = jaccard_distance(features, args.jaccard_k1, args.jaccard_k2, num_threads=threads)
        labels = dbscan_labels(dist, args.dbscan_eps, args.cluster_min_instances,
                               n_jobs=args.num_workers or None, epoch=epoch)
        C = int(labels.max()) + 1
        kind = "DBSCAN warm-up" if args.cluster != "dbscan" else "DBSCAN"
        return labels, member_means(features, labels, C), {"method": kind}
    if args.cluster == "kmeans":
        labels, centers = kmeans_labels(features, args.num_clusters, epoch_seed(args.seed, epoch, "cluster"))
        labels, centroids, C = remove_small_clusters(labels, centers, args.cluster_min_instances)
        info = {"method": "k-means", "removed_small": args.num_clusters - C}
    else:
        hdc = make_hdc(args)
        dist = None if args.no_jaccard else jaccard_distance(features, args.jaccard_k1, args.jaccard_k2,
                                                             dense=True,
                                                             num_threads=threads)
        hdc.fit(features, dist, outlier=args.hdc_outlier, random_state=epoch_seed(args.seed, epoch,
                                                                                  "cluster"),
                inplace=True)
        del dist
        labels, centroids, C = remove_small_clusters(hdc.labels_, hdc.cluster_centers_,
                                                     args.cluster_min_instances)
        if C and not args.hdc_centroids:
            centroids = member_means(features, labels, C)
        info = {"method": "HDC", "hdc_iterations": hdc.n_iter_, "hdc_shift": hdc.shifts_[-1],
                "hdc_relocations": hdc.relocations_, "hdc_pod_outliers": int((hdc.labels_pod_ < 0).sum()),
                "removed_small": int(len(np.unique(hdc.labels_[hdc.labels_ >= 0]))) - C}
        if hdc.nan_centroids_:
            log.warning(f"WARNING: {hdc.nan_centroids_} HDC centroid(s) have no member (only possible with "
                        "--threshold or --hdc-init random): as in the original they are NaN, which makes "
                        "every membership 0 in the following iteration")
    if C == 0:
        what = "k-means" if args.cluster == "kmeans" else "HDC"
        raise NoClusterError(
            f"{what} (K {args.num_clusters}) left no cluster at epoch {epoch}: every one of the {n} training "
            f"images is an outlier or in a cluster smaller than --cluster-min-instances "
            f"{args.cluster_min_instances}; lower --cluster-min-instances or --num-clusters"
            + (", or drop --hdc-outlier / raise --threshold" if what == "HDC" else ""))
    if not np.isfinite(centroids).all():
        raise ClusteringError(f"some HDC centroids are undefined at epoch {epoch} (a cluster without a "
                              "member inside the POD threshold): omit --hdc-centroids or raise --threshold")
    return labels, centroids, info


def check_cluster_count(args, n_train: int) -> None:
    """--num-clusters against the training set, before anything is trained."""
    if args.cluster == "dbscan" or (args.warmup_with_dbscan and args.warmup_iters >= args.num_epochs):
        return
    if args.num_clusters > n_train:
        raise ClusteringError(f"--num-clusters {args.num_clusters} is larger than the number of training "
                              f"images ({n_train}): {args.cluster} cannot form that many clusters; use at "
                              f"most {n_train} (3C uses about the number of identities: 750 Market, 1000 "
                              "MSMT17/VeRi)")
    if args.cluster == "hdc" and args.num_clusters < 2:
        raise ClusteringError("HDC needs --num-clusters >= 2")


# ------------------------------------------------------------------------------------- run
def run(args, argv, ckpt=None) -> int:
    """The run; ``ckpt``: the checkpoint of --resume, already loaded and checked by ``preflight``."""
    start = time.perf_counter()
    log_dir = Path(args.log_dir)
    ckpt_dir = Path(args.ckpt_dir) if args.ckpt_dir else log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    seed_everything(args.seed)
    device = pick_device(args.device)
    rank, world = du.init_from_env(device.type)
    main_rank = rank == 0
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())   # LOCAL_RANK
    progress = False if args.no_progress or not main_rank else None
    if args.notes:
        log.info(args.notes)
    log.info(f"==========\nArgs: {json.dumps(vars(args), indent=1, default=str)}\n==========")
    if args.num_instances > 0 and args.batch_size % args.num_instances:
        log.warning(f"WARNING: --batch-size {args.batch_size} is not a multiple of --num-instances "
                    f"{args.num_instances}")
    if main_rank:
        for folder in sorted({log_dir, ckpt_dir}):
            for gone in remove_stale_tmp(folder):
                log.info(f"==> removed {gone}, the temporary file of a write that was interrupted")
        text = yaml.safe_dump(config_of(args), sort_keys=True)
        atomic_write(log_dir / "config.yaml", lambda f: f.write(text.encode()))
    if world > 1:
        log.info(f"==> torchrun: {world} processes ({device.type}), {args.batch_size // world} images and "
                 f"{args.bn_slices // world} BN slice(s) per process")

    # data
    dataset = datasets.create(args.dataset, args.root_dir)
    train = dataset.train  # sorted by path; features and labels are indexed by it
    check_cluster_count(args, len(train))
    pin = device.type == "cuda"
    size = (args.height, args.width, args.batch_size, args.num_workers, pin)
    shard = [train[i] for i in du.shard(len(train))]   # world > 1: this rank's part, gathered in order
    cluster_loader = build_test_loader(shard, *size)
    query_loader = build_test_loader(dataset.query, *size)
    gallery_loader = build_test_loader(dataset.gallery, *size)

    # model, optimizer, schedule
    model = models.create(args.arch, pretrained=args.pretrained, version=args.resnet_pretrained,
                          pooling_type=args.pooling_type)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    set_ghost_bn(model, args.bn_slices // world)   # 3C's DataParallel BN statistics (1: plain BN)
    optimizer, scheduler = build_optimizer(model, args)

    start_epoch, best, best_epoch, last, initial, history, elapsed = 0, None, -1, None, None, [], 0.0
    memory = labels = resumed = None
    if args.resume:
        if ckpt is None:
            ckpt = preflight(args)
        load_model_state(model, ckpt["model"], args.resume)
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best, best_epoch, last = ckpt["epoch"], ckpt["best"], ckpt["best_epoch"], ckpt["last"]
        initial, history, elapsed = ckpt["initial"], list(ckpt["history"]), float(ckpt["elapsed"])
        labels = ckpt["pseudo_labels"].numpy()
        mem = ckpt["memory"]
        memory = create_memory(mem["mode"], model.num_features, int(mem["num_clusters"]),
                               temp=args.cm_temperature,
                               momentum=args.cm_momentum).to(device)
        memory.load_state_dict(mem["state"])
        resumed = ckpt
        log.info(f"==> resumed from {args.resume}: {start_epoch} epoch(s) done, best mAP "
                 f"{best['mAP'] if best else float('nan'):.1f} (epoch {best_epoch})")

    writer = tensorboard_writer(log_dir) if main_rank else None
    if initial is None and main_rank:
        t0 = time.perf_counter()
        result = evaluate_model(model, query_loader, gallery_loader, dataset.query, dataset.gallery, device,
                                eval_dist=args.eval_dist, rerank=args.rerank, progress=progress)
        initial = result.metrics("stepwise")
        log.info(f"==> initial model (before training): {describe(result)}  "
                 f"({time.perf_counter() - t0:.1f} s)")
        writer.add_scalar("eval/mAP", initial["mAP"], 0)
        writer.add_scalar("eval/rank1", initial["rank1"], 0)
    if resumed is not None:
        set_rng_state(resumed["rng"])  # last: everything above may have drawn random numbers
    model_fwd, gather = model, None
    if world > 1:
        model_fwd = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        gather = du.gather_with_grad

    for epoch in range(start_epoch, args.num_epochs):
        lr = optimizer.param_groups[0]["lr"]
        # 1. features of the training set
        if world > 1:
            du.sync_rng(get_rng_state, set_rng_state)
            if not main_rank:   # rank 0 keeps its stream; the others augment their slices differently
                torch.manual_seed(epoch_seed(args.seed, epoch, "augment") + rank)
        t0 = time.perf_counter()
        features = extract_features(model, cluster_loader, device, f"epoch {epoch} extract", progress)
        features = du.gather_in_order(features).numpy()   # the shards in dataset order
        t_extract = time.perf_counter() - t0

        # 2. pseudo-labels (DBSCAN warm-up / DBSCAN, HDC or k-means), small clusters removed
        t0 = time.perf_counter()
        if world == 1:
            labels, centroids, info = pseudo_labels(features, args, epoch)
        else:   # rank 0 clusters; its result (or its error) on every rank
            result = None
            if main_rank:
                try:
                    result = pseudo_labels(features, args, epoch)
                except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                    result = exc
            result = du.broadcast_object(result)
            if isinstance(result, Exception):
                raise result
            labels, centroids, info = result
        num_clusters, num_outliers = len(centroids), int((labels < 0).sum())
        if num_clusters == 1 and main_rank:
            log.warning(f"WARNING: epoch {epoch}: the pseudo-labels collapsed to ONE cluster "
                        f"({len(labels) - num_outliers} images, {num_outliers} outliers): the contrastive "
                        "loss against a one-entry memory is 0 and nothing is learnt this epoch; "
                        + ("raise --num-clusters" if info["method"] in ("HDC", "k-means")
                           else "lower --dbscan-eps"))

        # 3. cluster memory = L2norm(centroids); outliers leave the training set
        memory = create_memory(args.cm_mode, model.num_features, num_clusters, temp=args.cm_temperature,
                               momentum=args.cm_momentum).to(device)
        memory.initialise(torch.from_numpy(centroids))
        items = [(path, int(y), cam, i) for i, ((path, _, cam), y) in enumerate(zip(train, labels)) if y >= 0]
        train_loader = build_train_loader(items, args.height, args.width, args.batch_size, args.num_instances,
                                          args.iters, args.num_workers, seed=epoch_seed(args.seed,
                                                                                        epoch, "sampler"),
                                          pad=args.pad, pin_memory=pin, use_cameras=not args.no_cam,
                                          rank=rank, world=world)
        t_cluster = time.perf_counter() - t0
        extra = ""
        if info["method"] == "HDC":
            extra = (f" (HDC: {info['hdc_iterations']} iterations, last shift {info['hdc_shift']:.3g}, "
                     f"{info['hdc_relocations']} relocation passes, {info['hdc_pod_outliers']} peripheral, "
                     f"{info['removed_small']} clusters below {args.cluster_min_instances} removed)")
        elif info["method"] == "k-means":
            extra = f" ({info['removed_small']} clusters below {args.cluster_min_instances} removed)"
        log.info(f"==> epoch {epoch}: {info['method']}: {num_clusters} clusters, "
                 f"{num_outliers}/{len(labels)} outliers{extra}; lr {lr:.3g}")

        # 4. train
        stats = train_one_epoch(model_fwd, memory, train_loader, optimizer, epoch, args.iters, device,
                                reweight=args.loss_with_camera, print_freq=args.print_freq, writer=writer,
                                progress=progress, amp=args.amp, channels_last=args.channels_last,
                                gather=gather)
        log.info(f"==> epoch {epoch}: time extract {t_extract:.1f} s, cluster {t_cluster:.1f} s, "
                 f"train {stats['seconds']:.1f} s; mean loss {stats['loss']:.3f}")
        # 5. learning rate (3C steps it at the end of each epoch's training)
        scheduler.step()
        if world > 1:   # rank 0's BN running statistics (DataParallel's first replica) on every rank
            du.broadcast_buffers(model)
        if not main_rank:   # rank 0 evaluates, logs and writes
            continue

        # 6. evaluate (3C: after epoch 1 and every --eval-step-epoch epochs; best-on-test) and the last
        record = {"epoch": epoch, "clustering": info["method"], "clusters": num_clusters,
                  "outliers": num_outliers, "lr": lr, "loss": stats["loss"], "extract_s": round(t_extract, 2),
                  "cluster_s": round(t_cluster, 2), "train_s": round(stats["seconds"], 2)}
        record.update({k: v for k, v in info.items() if k.startswith("hdc_")})
        scheduled = (epoch + 1 >= args.eval_start_epoch
                     and ((epoch + 1) % args.eval_step_epoch == 0 or epoch == 0))
        is_last = epoch == args.num_epochs - 1
        is_best = False
        if scheduled or is_last:
            t0 = time.perf_counter()
            result = evaluate_model(model, query_loader, gallery_loader, dataset.query, dataset.gallery,
                                    device,
                                    eval_dist=args.eval_dist, rerank=args.rerank, progress=progress)
            metrics = last = result.metrics("stepwise")
            if scheduled and (best is None or metrics["mAP"] > best["mAP"]):
                is_best, best, best_epoch = True, metrics, epoch
            record.update({"mAP": metrics["mAP"], "rank1": metrics["rank1"], "scheduled_eval": scheduled,
                           "eval_s": round(time.perf_counter() - t0, 2)})
            writer.add_scalar("eval/mAP", metrics["mAP"], epoch + 1)
            writer.add_scalar("eval/rank1", metrics["rank1"], epoch + 1)
            best_txt = (f"best mAP {best['mAP']:.1f} (epoch {best_epoch})" if best
                        else "no scheduled evaluation yet")
            log.info(f" * Finished epoch {epoch:3d}  {describe(result)}  {best_txt}{' *' if is_best else ''}")
        history.append(record)
        writer.add_scalar("cluster/clusters", num_clusters, epoch)
        writer.add_scalar("cluster/outliers", num_outliers, epoch)
        if "hdc_iterations" in info:
            writer.add_scalar("cluster/hdc_iterations", info["hdc_iterations"], epoch)
        writer.add_scalar("train/lr", lr, epoch)
        for key in ("extract_s", "cluster_s", "train_s"):
            writer.add_scalar(f"time/{key[:-2]}", record[key], epoch)
        writer.flush()

        state = {"format": FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "best": best,
                 "best_epoch": best_epoch, "last": last, "initial": initial, "history": history,
                 "memory": {"mode": memory.name, "num_clusters": num_clusters, "state": memory.state_dict()},
                 "pseudo_labels": torch.from_numpy(np.asarray(labels,
                                                              dtype=np.int64)), "rng": get_rng_state(),
                 "elapsed": elapsed + time.perf_counter() - start, "args": config_of(args)}
        save_checkpoint(state, ckpt_dir / "checkpoint.pth.tar")
        snapshot = {"format": FORMAT, "epoch": epoch + 1, "model": model.state_dict(), "metrics": last,
                    "args": config_of(args)}
        if is_best:
            save_checkpoint(snapshot, ckpt_dir / "model_best.pth.tar")
        if args.eval_and_ckpt and scheduled and epoch > 0:
            save_checkpoint(snapshot, ckpt_dir / f"model_e{epoch + 1}.pth.tar")
    if not main_rank:
        return 0
    writer.close()

    if last is None:
        raise CheckpointError(f"nothing to report: the run has no evaluated epoch "
                              f"(--num-epochs {args.num_epochs})")
    wall = elapsed + time.perf_counter() - start
    selection, reported = ("best-on-test", best) if best is not None else ("last", last)
    write_results(log_dir, method="ccc", variant=args.cluster, target=TARGET[args.dataset], scale=args.scale,
                  common=reported, native=dict(reported,
                                               ap=NATIVE_AP), initial=initial, epochs=args.num_epochs,
                  wall_seconds=wall, command="python examples/train.py " + " ".join(argv),
                  config=config_of(args),
                  selection=selection, last=last, best_epoch=best_epoch, history=history,
                  native_note="3C computes step-wise AP (sklearn >= 0.19 average_precision_score), the "
                              "common flavour: native = common")
    best_txt = f"best epoch {best_epoch}: mAP {best['mAP']:.1f} rank-1 {best['rank1']:.1f}; " if best else ""
    log.info(f"==> {best_txt}last epoch mAP {last['mAP']:.1f} rank-1 {last['rank1']:.1f} (initial mAP "
             f"{initial['mAP']:.1f}); wall {wall:.1f} s; results in {log_dir / 'results.json'}")
    return 0


def preflight(args):
    """Before anything is written: a fresh run refuses a folder that holds a run; --resume loads
    its checkpoint safely and refuses a command whose settings differ from the checkpoint's
    (except run plumbing, MAY_CHANGE). Returns the checkpoint (None for a fresh run)."""
    log_dir = Path(args.log_dir)
    ckpt_dir = Path(args.ckpt_dir) if args.ckpt_dir else log_dir
    own = ckpt_dir / "checkpoint.pth.tar"
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(args.resume)
        if ckpt.get("format") != FORMAT:
            raise CheckpointError(f"{args.resume} is not a checkpoint of this reproduction (an original 3C "
                                  "model_best.pth holds weights only; evaluate it with examples/test.py)")
        if isinstance(ckpt.get("args"), dict):
            check_resume(ckpt["args"], config_of(args), MAY_CHANGE)
        if own.exists() and own.samefile(args.resume):
            return ckpt   # continuing the run of this folder
    for folder in dict.fromkeys((log_dir, ckpt_dir)):
        check_fresh_folder(folder, f"--resume {own}", "another --log-dir")
    return ckpt


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.print_config:
        sys.stdout.write(yaml.safe_dump(config_of(args), sort_keys=True))
        return 0
    try:
        ckpt = preflight(args)   # nothing written yet
    except CCCError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    main_rank = int(os.environ.get("RANK", "0")) == 0   # torchrun: rank 0 alone writes log.txt
    try:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        with run_logging(args.log_dir, append=bool(args.resume)) if main_rank else contextlib.nullcontext():
            try:
                return run(args, argv, ckpt)
            except CCCError as exc:
                report_error(f"error: {short_message(exc)}")
                return 2
            except EvaluationError as exc:
                report_error(f"error: cannot evaluate on {args.dataset} ({exc}); check the query/ and "
                             f"gallery folders under --root-dir {args.root_dir}")
                return 2
            finally:
                del ckpt
                du.cleanup()
    except OSError as exc:   # the log file, TensorBoard, results.json: a full disk is one line
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
