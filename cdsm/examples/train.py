"""CDSM training: the original's flags and defaults, the epoch loop top to bottom.

    python examples/train.py -b 128 -a resnet50 -d market1501 --k1 25 --iters 400 --eps 0.45 \
        --momentum 0.05 --num-instances 8 --mem-instances 4 --hard-weight 0.5 \
        --pooling-type gem --memorybank CMhybird_v5 --epochs 50 --logs-dir examples/logs/market1501/x
    python examples/train.py --config configs/market.yml --config configs/smoke.yml --data-dir DIR

``--config FILE`` (repeatable) loads YAML presets as defaults (keys = the flags' names with
underscores); flags on the command line override them. Each epoch:

  1. extract the teacher's features of the training set (sorted by path)
  2. k-reciprocal Jaccard distance (common_eval, k1, k2)
  3. DBSCAN at eps (and eps -+ eps_gap for CMhybrid_v5)
  4. reliability criterion (CMhybrid_v5)
  5. build the cluster memory from the teacher's features (core samples for v4/v5)
  6. pseudo-labelled training set (outliers dropped) and the identity sampler
  7. train --iters iterations (student, memory update with the teacher, EMA)
  8. evaluate the teacher, keep the best, write the checkpoint

Under ``torchrun --nproc_per_node=N`` [added] the student is wrapped in DistributedDataParallel:
each process extracts its share of the training set (gathered in dataset order), process 0
clusters and sends the labels to the others, each trains on its 1/N of every batch while the
memory is updated with the whole batch on every process, and process 0 evaluates and writes.
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

from cdsm import datasets, models
from cdsm.cluster import cluster_features, reliability
from cdsm.data import build_test_loader, build_train_loader
from cdsm.errors import CDSMError, CheckpointError, short_message
from cdsm.evaluation import NATIVE_AP, describe, evaluate_model, extract_features
from cdsm.memory import create_memory, resolve_name
from cdsm.memory import names as memory_names
from cdsm.models import create_teacher
from cdsm.models.ghost_bn import set_ghost_bn
from cdsm.trainer import train_one_epoch
from cdsm.utils import distributed as du
from cdsm.utils.checkpoint import FORMAT, load_checkpoint, load_model_state, model_state, save_checkpoint
from cdsm.utils.logging import report_error, run_logging, tensorboard_writer
from cdsm.utils.runfiles import (
    atomic_write,
    check_fresh_folder,
    check_resume,
    disk_full_line,
    finite_float,
    remove_stale_tmp,
)
from cdsm.utils.seed import get_rng_state, seed_everything, set_rng_state
from common_eval import EvaluationError
from common_eval.results import write_results

log = logging.getLogger("cdsm.train")
HERE = Path(__file__).resolve().parent
TARGET = {"market1501": "market", "dukemtmcreid": "duke", "msmt17": "msmt17"}
NOT_IN_CONFIG = ("config", "resume", "resume_ema", "print_config")
# run plumbing: may differ between a checkpoint and the command that resumes it (all else may not)
MAY_CHANGE = ("data_dir", "logs_dir", "workers", "num_threads", "device", "no_progress", "print_freq")


# ------------------------------------------------------------------------------------ flags
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
    g.add_argument("--scale", type=str, default="paper", choices=("paper", "smoke"),
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


# ---------------------------------------------------------------------------------- helpers
def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_optimizer(model, args):
    # one parameter group per tensor, as the original
    params = [{"params": [p]} for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=0.1)
    return optimizer, scheduler


def check_world(args, world: int) -> None:
    """torchrun's process count must split the batch and the BN slices evenly."""
    if args.batch_size % world:
        raise CDSMError(f"--batch-size {args.batch_size} cannot be split evenly over {world} processes: "
                        f"use a multiple of {world}")
    if args.bn_slices % world:
        raise CDSMError(f"--bn-slices {args.bn_slices} is not a multiple of the {world} processes (each "
                        f"normalises bn_slices / {world} slices of its part): use --bn-slices {world} or a "
                        "multiple of it")


class NoWriter:
    """The TensorBoard writer of processes other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def config_of(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in NOT_IN_CONFIG and k != "memorybank_note"}


def write_config(logs_dir: Path, args) -> None:
    text = yaml.safe_dump(config_of(args), sort_keys=True)
    atomic_write(logs_dir / "config.yaml", lambda f: f.write(text.encode()))


# ------------------------------------------------------------------------------------- run
def run(args, argv) -> int:
    start = time.perf_counter()
    logs_dir = Path(args.logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    seed_everything(args.seed)
    device = pick_device(args.device)
    rank, world = du.init_from_env(device.type)
    main_rank = rank == 0
    if world > 1:
        check_world(args, world)
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
    progress = False if args.no_progress or not main_rank else None
    log.info(f"==========\nArgs: {json.dumps(vars(args), indent=1, default=str)}\n==========")
    # every checkpoint is read (safely) and checked before anything is written
    ckpt = load_checkpoint(args.resume) if args.resume else None
    if ckpt is not None and ckpt.get("format") == FORMAT and "args" in ckpt:
        check_resume(ckpt["args"], config_of(args), MAY_CHANGE)
    ema_ckpt = load_checkpoint(args.resume_ema) if args.resume_ema else None
    if main_rank:
        for path in remove_stale_tmp(logs_dir):
            log.info(f"==> removed {path.name}, the temporary file of an interrupted write")
    if args.memorybank_note:
        log.warning(f"WARNING: {args.memorybank_note}")
    if args.num_instances > 0 and args.batch_size % args.num_instances:
        log.warning(f"WARNING: batch size {args.batch_size} is not a multiple of --num-instances "
                    f"{args.num_instances}")
    if main_rank:
        write_config(logs_dir, args)

    # data
    dataset = datasets.create(args.dataset, args.data_dir)
    train = dataset.train  # sorted by path; features, labels and reliability are indexed by it
    pin = device.type == "cuda"
    size = (args.height, args.width, args.batch_size, args.workers, pin)
    shard = du.shard(len(train))  # this process's part of the extraction (all of it in one process)
    cluster_loader = build_test_loader(train[shard.start:shard.stop], *size)
    query_loader = build_test_loader(dataset.query, *size)
    gallery_loader = build_test_loader(dataset.gallery, *size)

    # student and mean teacher
    student = models.create(args.arch, pretrained=args.pretrained, pooling_type=args.pooling_type,
                            num_features=args.features, dropout=args.dropout)
    teacher = create_teacher(student)
    set_ghost_bn(student, args.bn_slices // world)  # each process normalises its part of the batch
    set_ghost_bn(teacher, args.bn_slices // world)
    student.to(device)
    teacher.to(device)
    if args.channels_last:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(student, args)

    start_epoch, best, best_epoch, last, initial, history, elapsed = 0, None, -1, None, None, [], 0.0
    resumed = None
    if ckpt is not None:
        if ckpt.get("format") == FORMAT:
            load_model_state(student, ckpt["student"], args.resume)
            load_model_state(teacher, ckpt["teacher"], args.resume)
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            start_epoch, best, best_epoch = ckpt["epoch"], ckpt["best"], ckpt["best_epoch"]
            last = ckpt["last"]
            initial, history, elapsed = ckpt["initial"], list(ckpt["history"]), float(ckpt["elapsed"])
            resumed = ckpt
            log.info(f"==> resumed from {args.resume}: {start_epoch} epoch(s) done, best mAP "
                     f"{best['mAP'] if best else float('nan'):.1f} (epoch {best_epoch})")
        else:  # an original CDSM checkpoint: weights (and epoch) only
            load_model_state(student, model_state(ckpt, "student"), args.resume)
            start_epoch = int(ckpt.get("epoch", 0))
            log.warning(f"WARNING: {args.resume} is an original CDSM checkpoint: it restores the "
                        "student's weights and the epoch only (no optimizer, teacher or RNG state)")
    if ema_ckpt is not None:
        load_model_state(teacher, model_state(ema_ckpt, "teacher"), args.resume_ema)
        log.info(f"==> teacher weights from {args.resume_ema}")

    writer = tensorboard_writer(logs_dir) if main_rank else NoWriter()
    if initial is None and main_rank:
        t0 = time.perf_counter()
        result = evaluate_model(teacher, query_loader, gallery_loader, dataset.query, dataset.gallery,
                                device, progress=progress)
        initial = result.metrics("stepwise")
        log.info(f"==> initial model (before training): {describe(result)}  "
                 f"({time.perf_counter() - t0:.1f} s)")
        writer.add_scalar("eval/mAP", initial["mAP"], 0)
        writer.add_scalar("eval/rank1", initial["rank1"], 0)
    if resumed is not None:
        set_rng_state(resumed["rng"])  # last: everything above may have drawn random numbers
    student_fwd, gather = student, None
    if world > 1:
        du.broadcast_state(teacher)
        ids = [device.index] if device.type == "cuda" else None
        student_fwd = torch.nn.parallel.DistributedDataParallel(student, device_ids=ids)
        gather = du.gather_batch
        if not main_rank:  # augmentations: process 0 draws as a single process, the others their own
            seed_everything(epoch_seed(args.seed, 1000 + rank))

    memory = labels = None
    for epoch in range(start_epoch, args.epochs):
        lr = optimizer.param_groups[0]["lr"]
        # 1. teacher features of the training set
        t0 = time.perf_counter()
        features = extract_features(teacher, cluster_loader, device, f"epoch {epoch} extract", progress)
        features = du.gather_in_order(features)
        t_extract = time.perf_counter() - t0

        # 2-3. Jaccard distance, DBSCAN at eps (and eps -+ gap for the reliability criterion)
        t0 = time.perf_counter()
        v5 = args.memorybank == "CMhybrid_v5"

        def cluster(features=features, epoch=epoch, v5=v5):
            clustering = cluster_features(features.numpy(), args.eps, args.min_samples, args.k1, args.k2,
                                          args.eps_gap if v5 else None, epoch=epoch)
            # 4. reliability criterion
            rel = None
            if v5:
                rel = reliability(clustering.labels, clustering.labels_tight, clustering.labels_loose)
            return clustering, rel

        clustering, rel = du.run_on_main(cluster)  # torchrun: process 0 clusters, the others get its labels
        labels, num_clusters = clustering.labels, clustering.num_clusters

        # 5. cluster memory, from the teacher's features
        memory = create_memory(args.memorybank, student.num_features, num_clusters, temp=args.temp,
                               momentum=args.momentum, smooth=args.smooth, mem_instances=args.mem_instances,
                               hard_weight=args.hard_weight).to(device)
        memory.initialise(features.to(device), labels, clustering.core_indices,
                          rng=np.random.default_rng(epoch_seed(args.seed, epoch)))
        if v5:
            memory.set_reliability(rel.r_comp, rel.r_indep, rel.thr_comp, rel.thr_indep)
        t_cluster = time.perf_counter() - t0
        reliable = rel.num_reliable if rel is not None else None
        extra = ""
        if v5:
            tight, loose = clustering.labels_tight.max() + 1, clustering.labels_loose.max() + 1
            extra = f", tight/loose {tight}/{loose} clusters"
        log.info(f"==> epoch {epoch}: {num_clusters} clusters, {clustering.num_outliers}/{len(labels)} "
                 f"outliers, {reliable if reliable is not None else 'n/a'} reliable samples{extra}; "
                 f"lr {lr:g}")
        if num_clusters == 1:
            log.warning(f"WARNING: epoch {epoch}: the pseudo-labels collapsed to one cluster "
                        f"({len(labels) - clustering.num_outliers} of {len(labels)} images): the contrastive "
                        "loss is 0 and the model does not learn; lower --eps, or check that the training set "
                        "holds more than one person")

        # 6. pseudo-labelled training set (outliers dropped), identity sampler
        items = [(path, int(y), cam, i) for i, ((path, _, cam), y) in enumerate(zip(train, labels)) if y >= 0]
        train_loader = build_train_loader(items, args.height, args.width, args.batch_size, args.num_instances,
                                          args.iters, args.workers, seed=epoch_seed(args.seed, epoch),
                                          pad=args.pad, pin_memory=pin, rank=rank, world=world)

        # 7. train
        stats = train_one_epoch(student_fwd, teacher, memory, train_loader, optimizer, epoch, args.iters,
                                device, ema_max_decay=args.ema_decay, print_freq=args.print_freq,
                                writer=writer, progress=progress, amp=args.amp, gather=gather)
        if world > 1:  # BN running statistics of process 0 (DataParallel's first replica) everywhere
            du.broadcast_state(student, buffers_only=True)
            du.broadcast_state(teacher, buffers_only=True)
        log.info(f"==> epoch {epoch}: time extract {t_extract:.1f} s, cluster {t_cluster:.1f} s, "
                 f"train {stats['seconds']:.1f} s; mean loss {stats['loss']:.3f}")

        # 8. evaluate the teacher, keep the best (the original reports the best epoch on the test set)
        record = {"epoch": epoch, "clusters": num_clusters, "outliers": clustering.num_outliers,
                  "reliable": reliable, "lr": lr, "loss": stats["loss"], "extract_s": round(t_extract, 2),
                  "cluster_s": round(t_cluster, 2), "train_s": round(stats["seconds"], 2)}
        is_best = False
        if not main_rank:  # process 0 evaluates, logs and writes
            scheduler.step()
            continue
        if (epoch + 1) % args.eval_step == 0 or epoch == args.epochs - 1:
            t0 = time.perf_counter()
            result = evaluate_model(teacher, query_loader, gallery_loader, dataset.query, dataset.gallery,
                                    device, progress=progress)
            metrics = last = result.metrics("stepwise")
            is_best = best is None or metrics["mAP"] > best["mAP"]
            if is_best:
                best, best_epoch = metrics, epoch
            record.update({"mAP": metrics["mAP"], "rank1": metrics["rank1"],
                           "eval_s": round(time.perf_counter() - t0, 2)})
            writer.add_scalar("eval/mAP", metrics["mAP"], epoch + 1)
            writer.add_scalar("eval/rank1", metrics["rank1"], epoch + 1)
            log.info(f" * Finished epoch {epoch:3d}  teacher {describe(result)}  best mAP {best['mAP']:.1f} "
                     f"(epoch {best_epoch}){' *' if is_best else ''}")
        history.append(record)
        for key in ("clusters", "outliers", "reliable"):
            if record[key] is not None:
                writer.add_scalar(f"cluster/{key}", record[key], epoch)
        writer.add_scalar("train/lr", lr, epoch)
        for key in ("extract_s", "cluster_s", "train_s"):
            writer.add_scalar(f"time/{key[:-2]}", record[key], epoch)
        writer.flush()
        scheduler.step()

        state = {"format": FORMAT, "epoch": epoch + 1, "student": student.state_dict(),
                 "teacher": teacher.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "best": best, "best_epoch": best_epoch, "last": last,
                 "initial": initial, "history": history,
                 "memory": {"name": memory.name, "num_clusters": num_clusters, "state": memory.state_dict()},
                 "pseudo_labels": torch.from_numpy(labels), "rng": get_rng_state(),
                 "elapsed": elapsed + time.perf_counter() - start, "args": config_of(args)}
        save_checkpoint(state, logs_dir / "checkpoint.pth.tar")
        if is_best:
            save_checkpoint({"format": FORMAT, "epoch": epoch + 1, "teacher": teacher.state_dict(),
                             "metrics": best, "args": config_of(args)}, logs_dir / "model_best.pth.tar")
    writer.close()
    if not main_rank:
        return 0

    if best is None:
        raise CheckpointError(f"nothing to report: the run has no evaluated epoch (--epochs {args.epochs})")
    wall = elapsed + time.perf_counter() - start
    native = dict(best, ap=NATIVE_AP)
    write_results(logs_dir, method="cdsm", target=TARGET[args.dataset], scale=args.scale, common=best,
                  native=native, initial=initial, epochs=args.epochs, wall_seconds=wall,
                  command="python examples/train.py " + " ".join(argv), config=config_of(args),
                  selection="best-on-test", last=last,
                  variant=None if args.memorybank == "CMhybrid_v5" else args.memorybank,
                  best_epoch=best_epoch, history=history,
                  native_note="CDSM computes step-wise AP (sklearn >= 0.19 average_precision_score), "
                              "the common flavour: native = common")
    log.info(f"==> best epoch {best_epoch}: mAP {best['mAP']:.1f} rank-1 {best['rank1']:.1f} "
             f"(initial mAP {initial['mAP']:.1f}); last epoch mAP {last['mAP']:.1f}; "
             f"wall {wall:.1f} s; results in {logs_dir / 'results.json'}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.print_config:  # nothing read, nothing written
        print(yaml.safe_dump(config_of(args), sort_keys=True), end="")
        return 0
    logs_dir = Path(args.logs_dir)
    try:
        own = logs_dir / "checkpoint.pth.tar"
        # a run never writes into a folder that holds another run: a fresh run, or a resume of a
        # checkpoint from elsewhere, needs a folder of its own
        if not (args.resume and own.exists() and own.samefile(args.resume)):
            check_fresh_folder(logs_dir, f"--resume {own}", "another --logs-dir")
        logs_dir.mkdir(parents=True, exist_ok=True)
    except CDSMError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc) or f"error: cannot create {logs_dir}: {exc.strerror or exc}"
        print(line, file=sys.stderr)
        return 2
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun: process 0 alone writes log.txt
    with run_logging(args.logs_dir, append=bool(args.resume)) if main_rank else contextlib.nullcontext():
        try:
            return run(args, argv)
        except CDSMError as exc:
            report_error(f"error: {short_message(exc)}")
            return 2
        except EvaluationError as exc:
            report_error(f"error: cannot evaluate on {args.dataset}: {exc}")
            return 2
        except OSError as exc:
            line = disk_full_line(exc)
            if line is None:
                raise
            report_error(line)
            return 2
        finally:
            du.cleanup()


if __name__ == "__main__":
    sys.exit(main())
