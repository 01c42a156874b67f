"""AuxUSL training (the original's ``scripts/main.py`` + engine ``usl_MTCluster_base``).

    python examples/train.py --config-file configs/USL_MTCluster.yml [KEY VALUE ...]
    python examples/train.py --config-file configs/USL_MTCluster_Duke.yml DATASETS.DIR /data
    python examples/train.py --config-file configs/USL_MTCluster.yml RESUME log/x/model_mAP_best.pth.tar \
        TEST.EVAL_ONLY True

The configuration is the yacs tree of ``auxusl/config/defaults.py``, then the YAML file (with
``_BASE_``), then the ``KEY VALUE`` pairs; the resolved tree goes to ``OUTPUT_DIR/config.yaml``.
This script is the engine: it builds everything from the configuration and runs, per epoch,

  1. clustering features: one random clip per training tracklet, teacher, raw features
  2. Jaccard distance (k1, k2), + CCE_LAMBDA * SCP, * STS                (auxiliary information)
  3. eps, once at the first epoch of the process (adaptive or CLUSTER.EPS)
  4. DBSCAN, or ICDBSCAN with the time-overlap cannot-links (TOC)
  5. pseudo-labelled tracklets (noise dropped), cluster centroids
  6. RLSCE neighbour map; classifier rows of student and teacher <- normalised centroids
  7. DTI: round(ITERS_CLUSTER_MULTIPLIER * #clusters) iterations; a new optimizer
  8. train (hard ID + triplet/WATL, soft CE + soft triplet; EMA teacher)
  9. every |SAVE_STEP| epochs and at the end: evaluate the teacher (test-time TOC, SCP, STS)
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from auxusl import datasets, models
from auxusl.auxinfo import store
from auxusl.cluster import (
    ClusterState,
    adaptive_eps,
    clustering_distance,
    neighbour_map,
    run_clustering,
    sts_factor,
)
from auxusl.config import setup_cfg
from auxusl.data import FrameReader, build_test_transform, build_train_loader, build_train_transform
from auxusl.errors import AuxInfoError, AuxUSLError, CheckpointError, ConfigError, short_message
from auxusl.evaluation import (
    NATIVE_AP,
    cluster_features,
    describe,
    evaluate_distance,
    query_gallery_distance,
    rerank,
    tracklet_features,
)
from auxusl.losses import SoftEntropy, SoftTripletLoss, build_id_loss, build_triplet_loss
from auxusl.models import create_teacher
from auxusl.models.ghost_bn import set_ghost_bn
from auxusl.trainer import train_one_epoch
from auxusl.utils import (
    copy_weights,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from auxusl.utils import distributed as du
from auxusl.utils.checkpoint import FORMAT
from auxusl.utils.logging import report_error, run_logging, tensorboard_writer
from auxusl.utils.runfiles import (
    atomic_write,
    check_fresh_folder,
    check_resume,
    disk_full_line,
    dumps_strict,
    remove_stale_tmp,
)
from common_eval import EvaluationError
from common_eval.results import write_results

log = logging.getLogger("auxusl.train")
ENGINES = ("usl_MTCluster_base", "USL")
AUX_KEYS = (
    "CLUSTER.ICDBSCAN_OPTION",
    "CLUSTER.CCE_OPTION",
    "CLUSTER.STR_OPTION",
    "TEST.OVERLAP_CONSTRAINT",
    "TEST.CCE_OPTION",
    "TEST.STR_OPTION",
)


# ------------------------------------------------------------------------------ command line
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


# the repository's common vocabulary, beside the original's keys (which win when both are given)
ALIAS_FLAGS = {"--data-root": "DATASETS.DIR", "--logs-dir": "OUTPUT_DIR", "--checkpoint": "RESUME"}


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


def setup(argv):
    argv, alias_opts = split_aliases(argv)
    print_config = "--print-config" in argv  # also after the KEY VALUE pairs
    argv = [a for a in argv if a != "--print-config"] + (["--print-config"] if print_config else [])
    args = build_parser().parse_args(argv[-1:] + argv[:-1] if print_config else argv)
    cfg = setup_cfg(args.config_file, alias_opts + list(args.opts))
    return cfg, args


def cfg_get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def variant_of(cfg) -> str:
    """ "ours" with any auxiliary-information module on, "ours-" without (the paper's rows)."""
    return "ours" if any(cfg_get(cfg, k) for k in AUX_KEYS) else "ours-"


def check_cfg(cfg) -> None:
    if cfg.MODE not in ENGINES:
        raise ConfigError(f"MODE '{cfg.MODE}' is not an engine; the only one is usl_MTCluster_base")
    if cfg.OPTIM.SCHED != "single_step":
        raise ConfigError(
            f"OPTIM.SCHED '{cfg.OPTIM.SCHED}' is not supported by the engine (the original raises "
            "NotImplementedError for it): use single_step, as both original configs do"
        )
    if cfg.OPTIM.OPT not in ("adam", "amsgrad", "sgd", "rmsprop"):
        raise ConfigError(f"OPTIM.OPT '{cfg.OPTIM.OPT}' is not one of adam, amsgrad, sgd, rmsprop")
    try:
        target = datasets.canonical(cfg.DATASETS.TARGET)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if target == "mars" and variant_of(cfg) == "ours":
        on = [k for k in AUX_KEYS if cfg_get(cfg, k)]
        raise ConfigError(
            f"{', '.join(on)} need time stamps, which MARS frame names do not have: auxiliary "
            "information exists for DukeMTMC-VideoReID only"
        )
    if cfg.DATASETS.MARS_GALLERY not in ("torchreid", "official"):
        raise ConfigError(
            f"DATASETS.MARS_GALLERY must be torchreid or official, got {cfg.DATASETS.MARS_GALLERY!r}"
        )
    if cfg.SCALE not in ("paper", "smoke"):
        raise ConfigError(f"SCALE must be paper or smoke, got {cfg.SCALE!r}")
    if str(cfg.MODEL.AMP).lower() not in ("off", "bf16", "fp16"):
        raise ConfigError(f"MODEL.AMP must be off, bf16 or fp16, got {cfg.MODEL.AMP!r}")
    if cfg.MODEL.BN_SLICES < 1:
        raise ConfigError(f"MODEL.BN_SLICES must be >= 1, got {cfg.MODEL.BN_SLICES}")
    if not cfg.CHECKPOING.SAVE_STEP:
        raise ConfigError("CHECKPOING.SAVE_STEP must hold at least one value")


# ---------------------------------------------------------------------------------- builders
def pick_device(cfg) -> torch.device:
    name = str(cfg.MODEL.DEVICE)
    if name.startswith("cuda"):
        if "CUDA_VISIBLE_DEVICES" not in os.environ and len(cfg.GPU_Device):
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in cfg.GPU_Device)
        if not torch.cuda.is_available():
            log.warning("WARNING: MODEL.DEVICE is cuda but no GPU is available: running on the CPU")
            return torch.device("cpu")
    return torch.device(name)


def build_dataset(cfg, verbose: bool = True):
    root = Path(cfg.DATASETS.DIR or ".") / cfg.DATASETS.NAME
    return datasets.create(
        cfg.DATASETS.TARGET,
        root,
        info_dir=cfg.DATASETS.MARS_INFO,
        mars_gallery=cfg.DATASETS.MARS_GALLERY,
        mode=cfg.DATASETS.MODE,
        dense_step=cfg.DATASETS.DENSE_STEP,
        verbose=verbose,
    )


def build_transforms(cfg):
    i = cfg.INPUT
    cj = (i.CJ.PROB, i.CJ.BRIGHTNESS, i.CJ.CONTRAST, i.CJ.SATURATION, i.CJ.HUE) if i.CJ.ENABLED else None
    rea = (i.REA.PROB, i.REA.MEAN) if i.REA.ENABLED else None
    train = build_train_transform(
        i.SIZE_TRAIN,
        i.PIXEL_MEAN,
        i.PIXEL_STD,
        i.DO_FLIP,
        i.FLIP_PROB,
        i.DO_PAD,
        i.PADDING,
        i.PADDING_MODE,
        cj,
        rea,
    )
    return train, build_test_transform(i.SIZE_TEST, i.PIXEL_MEAN, i.PIXEL_STD)


def pretrained_source(cfg) -> str:
    b = cfg.MODEL.BACKBONE
    if not b.PRETRAIN or str(b.PRETRAIN_PATH).lower() == "none":
        return "none"
    return b.PRETRAIN_PATH or "imagenet"


def build_model(cfg, num_classes: int):
    try:
        return models.create(
            cfg.MODEL.ARCH, num_classes, pretrained_source(cfg), cfg.MODEL.BACKBONE.LAST_STRIDE
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def build_optimizer(cfg, model):
    """A new optimizer over every parameter (the original builds one per epoch)."""
    o = cfg.OPTIM
    params = [{"params": list(model.parameters()), "initial_lr": o.LR}]
    if o.OPT in ("adam", "amsgrad"):
        return torch.optim.Adam(
            params,
            lr=o.LR,
            weight_decay=o.WEIGHT_DECAY,
            betas=(o.ADAM_BETA1, o.ADAM_BETA2),
            amsgrad=o.OPT == "amsgrad",
        )
    if o.OPT == "sgd":
        return torch.optim.SGD(
            params,
            lr=o.LR,
            momentum=o.MOMENTUM,
            weight_decay=o.WEIGHT_DECAY,
            dampening=o.SGD_DAMPENING,
            nesterov=o.SGD_NESTEROV,
        )
    return torch.optim.RMSprop(
        params, lr=o.LR, momentum=o.MOMENTUM, weight_decay=o.WEIGHT_DECAY, alpha=o.RMSPROP_ALPHA
    )


def single_step_lr(cfg, epoch: int) -> float:
    """The original's "single_step" rate: computed, logged, never given to the optimizer."""
    return cfg.OPTIM.LR * (0.1 ** (epoch // cfg.OPTIM.STEPS[-1]))


def eval_epochs(cfg, epoch: int) -> bool:
    """CHECKPOING.SAVE_STEP: > 0 the listed (1-based) epochs, < 0 every |s| epochs; always the last."""
    steps, done = list(cfg.CHECKPOING.SAVE_STEP), epoch + 1
    if done == cfg.OPTIM.EPOCHS:
        return True
    if steps[0] > 0:
        return done in steps
    return done % -steps[0] == 0


def aux_path(cfg, name: str) -> Path:
    return Path(cfg.PICKLE_PATH) / name


def regenerate_hint(cfg) -> str:
    return (
        f"python -m auxusl.tools.make_aux --dataset dukevideo --data-root {cfg.DATASETS.DIR or '.'} "
        f"--name {cfg.DATASETS.NAME} --mode {cfg.DATASETS.MODE} --dense-step {cfg.DATASETS.DENSE_STEP} "
        f"--out {cfg.PICKLE_PATH}"
    )


def load_train_aux(cfg, dataset, multi: int):
    """(SCP N x N, STS factor N x N, cannot-link sets) for the clustering samples, aligned by key."""
    c, hint = cfg.CLUSTER, regenerate_hint(cfg)
    keys = dataset.keys(dataset.train)
    cams = np.asarray([cam + 1 for _, _, cam in dataset.train])
    idx = np.repeat(np.arange(len(keys)), multi)  # CLUSTER_SAMPLE_MULTI clips per tracklet
    scp = sts = cannot = None
    if c.CCE_OPTION:
        scp = store.load_same_camera_train(aux_path(cfg, c.CCE_PATH), keys, cams, hint)[np.ix_(idx, idx)]
        log.info(f"=> SCP (training): read {aux_path(cfg, c.CCE_PATH)}")
    if c.STR_OPTION:
        P = store.load_sts_train(aux_path(cfg, c.STR_PATH), keys, hint)[np.ix_(idx, idx)]
        sts = sts_factor(P, c.STR_LAMBDA, c.STR_GAMMA)
        log.info(
            f"=> STS (training): read {aux_path(cfg, c.STR_PATH)}; 1 + {c.STR_LAMBDA} exp(-{c.STR_GAMMA} P)"
        )
    if c.ICDBSCAN_OPTION:
        sets = store.load_cannotlinks(aux_path(cfg, c.ICDBSCAN_CONSTRAINT_PATH), keys, hint)
        cannot = [sorted({int(j) * multi + s for j in sets[t] for s in range(multi)}) for t in idx]
        log.info(
            f"=> TOC (training): read {aux_path(cfg, c.ICDBSCAN_CONSTRAINT_PATH)}: "
            f"{sum(len(s) for s in sets) // 2} cannot-link pairs"
        )
    return scp, sts, cannot


def load_test_aux(cfg, dataset) -> dict:
    t, hint = cfg.TEST, regenerate_hint(cfg)
    q, g = dataset.keys(dataset.query), dataset.keys(dataset.gallery)
    qc = np.asarray([c + 1 for _, _, c in dataset.query])
    gc = np.asarray([c + 1 for _, _, c in dataset.gallery])
    aux = {}
    if t.OVERLAP_CONSTRAINT:
        aux["toc"] = store.load_overlap_infer(aux_path(cfg, t.CONSTRAINT_PATH), q, g, hint)
    if t.CCE_OPTION:
        aux["scp"] = store.load_same_camera_infer(aux_path(cfg, t.CCE_PATH), q, g, qc, gc, hint)
    if t.STR_OPTION:
        aux["sts"] = store.load_sts_infer(aux_path(cfg, t.STR_PATH), q, g, hint)
    if aux:
        log.info(
            f"=> test-time auxiliary terms: {', '.join(k.upper() for k in aux)} (from {cfg.PICKLE_PATH})"
        )
    return aux


class Evaluator:
    """Teacher features of query and gallery, the test-time terms, common_eval ranking."""

    def __init__(self, cfg, dataset, transform, reader, device, progress):
        self.cfg, self.dataset, self.transform, self.reader = cfg, dataset, transform, reader
        self.device, self.progress = device, progress
        self.aux = load_test_aux(cfg, dataset)

    def distance(self, qf, gf, terms) -> np.ndarray:
        c = self.cfg
        return query_gallery_distance(
            qf,
            gf,
            toc=self.aux["toc"] if "toc" in terms else None,
            scp=self.aux["scp"] if "scp" in terms else None,
            scp_lambda=c.TEST.CCE_LAMBDA,
            sts_p=self.aux["sts"] if "sts" in terms else None,
            sts_lambda=c.CLUSTER.STR_LAMBDA,
            sts_gamma=c.CLUSTER.STR_GAMMA,
        )

    def __call__(self, model) -> dict:
        """{"result": RankResult with the configured terms, "ablation": {name: metrics}}."""
        c, d = self.cfg, self.dataset
        kw = dict(
            device=self.device,
            batch_frames=c.DATALOADER.CLUSTER_BATCH_SIZE * c.DATALOADER.CLUSTER_SEQ_LEN,
            workers=c.DATALOADER.NUM_WORKERS,
            progress=self.progress,
        )
        qf, _ = tracklet_features(model, d.query, self.transform, self.reader, desc="extract query", **kw)
        gf, _ = tracklet_features(model, d.gallery, self.transform, self.reader, desc="extract gallery", **kw)
        terms = tuple(self.aux)
        dist = self.distance(qf, gf, terms)
        result = evaluate_distance(dist, d.query, d.gallery)
        ablation = {}
        if terms:  # each test-time module's effect on its own, from the same features
            ablation["none"] = evaluate_distance(self.distance(qf, gf, ()), d.query, d.gallery).metrics(
                "stepwise"
            )
            if len(terms) > 1:
                for t in terms:
                    ablation[t] = evaluate_distance(self.distance(qf, gf, (t,)), d.query, d.gallery).metrics(
                        "stepwise"
                    )
            ablation["+".join(terms)] = result.metrics("stepwise")
        out = {"result": result, "ablation": ablation}
        if c.TEST.RERANK.ENABLED:
            r = c.TEST.RERANK
            out["rerank"] = evaluate_distance(rerank(dist, qf, gf, r.K1, r.K2, r.LAMBDA), d.query, d.gallery)
        return out


class NoWriter:
    """The TensorBoard writer of ranks other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def check_world(cfg, world: int) -> None:
    if cfg.DATALOADER.TRAIN_BATCH_SIZE % world:
        raise ConfigError(
            f"DATALOADER.TRAIN_BATCH_SIZE {cfg.DATALOADER.TRAIN_BATCH_SIZE} is not divisible by the {world} "
            "processes (the global batch is split evenly)"
        )
    if cfg.MODEL.BN_SLICES % world:
        raise ConfigError(
            f"MODEL.BN_SLICES {cfg.MODEL.BN_SLICES} is not a multiple of the {world} processes (each process "
            "normalises BN_SLICES / world slices of its part)"
        )


def config_dict(cfg) -> dict:
    return json.loads(json.dumps(cfg, default=lambda o: dict(o)))


# run plumbing: may differ between a checkpoint and the command that resumes it
RESUME_MAY_CHANGE = {
    "OUTPUT_DIR",
    "DATASETS.DIR",
    "PICKLE_PATH",
    "RESUME",
    "DATALOADER.NUM_WORKERS",
    "NUM_THREADS",
    "MODEL.DEVICE",
    "PROGRESS",
    "PRINT_PERIOD",
    "TEST.PRINT_PERIOD",
    "TEST.EVAL_ONLY",
}


def flat_config(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


def check_resume_config(cfg, ckpt: dict) -> None:
    """RESUME continues the run as it was trained: a configuration that differs from the one
    stored in the checkpoint in anything but run plumbing is refused, listing the differences.
    A checkpoint without a stored configuration (the original's) is resumed; the configuration
    is stored from its next save on."""
    import yaml

    saved = ckpt.get("config")
    if not isinstance(saved, str):
        return
    try:
        saved = yaml.safe_load(saved)
    except yaml.YAMLError:
        return
    if isinstance(saved, dict):
        check_resume(flat_config(saved), flat_config(config_dict(cfg)), RESUME_MAY_CHANGE)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


# ---------------------------------------------------------------------------------------- run
def preflight(cfg):
    """Before anything is written: RESUME loads its checkpoint (safely) and refuses a configuration
    that differs from the one it was trained with; a training run never writes into a folder that
    holds another run (a fresh run, or a resume of a checkpoint kept elsewhere). Returns the
    checkpoint to resume (None otherwise)."""
    if cfg.TEST.EVAL_ONLY:
        return None
    out_dir = Path(cfg.OUTPUT_DIR)
    own = out_dir / "checkpoint_new.pth.tar"
    ckpt = None
    if cfg.RESUME:
        ckpt = load_checkpoint(cfg.RESUME)
        check_resume_config(cfg, ckpt)
        if own.exists() and own.samefile(cfg.RESUME):
            return ckpt  # continuing the run of this folder
    check_fresh_folder(out_dir, f"RESUME {own}", "another OUTPUT_DIR (--logs-dir)")
    return ckpt


def run(cfg, argv, resumed=None) -> int:
    start = time.perf_counter()
    load_start = os.getloadavg()
    out_dir = Path(cfg.OUTPUT_DIR)
    check_cfg(cfg)
    if cfg.NUM_THREADS:
        torch.set_num_threads(cfg.NUM_THREADS)
    torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK) and not cfg.TEST.EVAL_ONLY
    torch.backends.cudnn.deterministic = True
    seed_everything(cfg.SEED)
    device = pick_device(cfg)
    rank, world = du.init_from_env(device.type)
    main_rank = rank == 0
    if world > 1:
        check_world(cfg, world)
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
    progress = None if cfg.PROGRESS and main_rank else False
    log.info(f"Command line arguments: {' '.join(argv)}")
    log.info(f"Running with full config:\n{cfg.dump()}")
    if main_rank:
        gone = remove_stale_tmp(out_dir)
        if gone:
            names = ", ".join(p.name for p in gone)
            log.info(f"removed {len(gone)} temporary file(s) of an interrupted write: {names}")
        write_text(out_dir / "config.yaml", cfg.dump())
    variant = variant_of(cfg)
    log.info(
        f"==> AuxUSL {'Ours' if variant == 'ours' else 'Ours-'} ("
        f"{'with' if variant == 'ours' else 'without'} auxiliary information) on {cfg.DATASETS.TARGET}; "
        f"device "
        f"{device}, {torch.get_num_threads()} threads"
    )

    # data, models
    dataset = build_dataset(cfg)
    train = dataset.train  # sorted: the order of clustering samples and auxiliary matrices
    train_tf, test_tf = build_transforms(cfg)
    reader = FrameReader(cache=cfg.DATALOADER.CACHE_IMAGES)
    multi = max(1, cfg.DATALOADER.CLUSTER_SAMPLE_MULTI)
    num_classes = len(train) * multi  # the original: len(train), an upper bound of #clusters for multi = 1
    student = build_model(cfg, num_classes)
    teacher = create_teacher(student)  # same start (the original loads the same ImageNet weights into both)
    student.to(device)
    if cfg.MODEL.CHANNELS_LAST:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    teacher.to(device)
    ckpt, start_epoch, initial_ablation = None, 0, None
    best, best_epoch, best_top1, last, initial, history, elapsed = None, -1, None, None, None, [], 0.0
    cluster_state = None
    if cfg.RESUME:
        ckpt = resumed if resumed is not None else load_checkpoint(cfg.RESUME)  # checked by preflight
        if "state_dict" not in ckpt:
            raise CheckpointError(
                f"{cfg.RESUME} holds no 'state_dict' (teacher weights); keys: {', '.join(sorted(ckpt)[:8])}"
            )
        copy_weights(teacher, ckpt["state_dict"], cfg.RESUME)
        if cfg.TEST.EVAL_ONLY:
            copy_weights(student, ckpt["state_dict"], cfg.RESUME)
        else:
            if "student_dict" not in ckpt:
                raise CheckpointError(f"{cfg.RESUME} holds no 'student_dict': it cannot resume training")
            copy_weights(student, ckpt["student_dict"], cfg.RESUME)
            start_epoch = int(ckpt["epoch"])
            if ckpt.get("format") == FORMAT:
                best, best_epoch, best_top1 = ckpt["best"], ckpt["best_epoch"], ckpt["best_top1_metrics"]
                last, initial, history = ckpt["last"], ckpt["initial"], list(ckpt["history"])
                initial_ablation = ckpt.get("initial_ablation")
                elapsed = float(ckpt["elapsed"])
                cluster_state = ClusterState.from_dict(ckpt["cluster"]) if ckpt.get("cluster") else None
            else:
                log.warning(
                    f"WARNING: {cfg.RESUME} is an original AuxUSL checkpoint: weights, epoch and best "
                    "scores only (eps is re-estimated, as the original does)"
                )
            log.info(
                f"=> Start epoch {start_epoch + 1}\tBest mAP: {float(ckpt.get('best_mAP', 0)):5.1%}\t"
                f"Best top1: {float(ckpt.get('best_top1', 0)):5.1%}"
            )

    evaluator = Evaluator(cfg, dataset, test_tf, reader, device, progress)
    if cfg.TEST.EVAL_ONLY and not main_rank:
        return 0
    if cfg.TEST.EVAL_ONLY:
        log.info("Eval ONLY")
        out = evaluator(teacher)
        log.info(f"==> teacher of {cfg.RESUME or 'the initial model'}: {describe(out['result'])}")
        for name, m in out["ablation"].items():
            log.info(f"    test-time terms {name}: mAP {m['mAP']:.1f} rank-1 {m['rank1']:.1f}")
        record = {
            "checkpoint": cfg.RESUME,
            "variant": variant,
            **out["result"].metrics("stepwise"),
            "ablation": out["ablation"],
        }
        if "rerank" in out:
            log.info(f"==> re-ranked: {describe(out['rerank'])}")
            record["rerank"] = out["rerank"].metrics("stepwise")
        write_text(out_dir / "eval_results.json", dumps_strict(record, indent=1) + "\n")
        return 0

    scp, sts, cannot = load_train_aux(cfg, dataset, multi)
    writer = tensorboard_writer(out_dir) if main_rank else NoWriter()
    if initial is None and main_rank:
        t0 = time.perf_counter()
        out = evaluator(teacher)
        initial, initial_ablation = out["result"].metrics("stepwise"), out["ablation"] or None
        log.info(
            f"==> initial model (before training): {describe(out['result'])} "
            f"({time.perf_counter() - t0:.1f} s)"
        )
        for name, m in out["ablation"].items():
            log.info(f"    test-time terms {name:12s}: mAP {m['mAP']:5.1f}  rank-1 {m['rank1']:5.1f}")
        writer.add_scalar("eval/mAP", initial["mAP"], 0)
        writer.add_scalar("eval/rank1", initial["rank1"], 0)
    if ckpt is not None and ckpt.get("format") == FORMAT:
        set_rng_state(ckpt["rng"])  # last: everything above may have drawn random numbers

    student_fwd, teacher_fwd = student, teacher
    if device.type == "cuda" and len(cfg.GPU_Device) > 1 and torch.cuda.device_count() > 1:
        student_fwd, teacher_fwd = nn.DataParallel(student), nn.DataParallel(teacher)
    multi_gpu = len(cfg.GPU_Device) > 1 or world > 1
    if multi_gpu and student_fwd is student:  # one device emulates the replicas' BN statistics
        set_ghost_bn(student, cfg.MODEL.BN_SLICES // world)
        set_ghost_bn(teacher, cfg.MODEL.BN_SLICES // world)
    gather = None
    if world > 1:  # whole-batch losses on every rank; the teacher is not wrapped (EMA only)
        ids = [device.index] if device.type == "cuda" else None
        student_fwd = nn.parallel.DistributedDataParallel(student, device_ids=ids)
        gather = du.gather_with_grad
    c, dl = cfg.CLUSTER, cfg.DATALOADER
    for epoch in range(start_epoch, cfg.OPTIM.EPOCHS):
        epoch_start = time.perf_counter()
        # 1. clustering features (teacher, one random clip per tracklet, raw features)
        t0 = time.perf_counter()
        du.sync_rng(get_rng_state, set_rng_state)  # every rank draws rank 0's clips
        part = du.shard(len(train) * multi) if world > 1 else None
        feats, sampled = cluster_features(
            teacher,
            train,
            dl.CLUSTER_SEQ_LEN,
            test_tf,
            reader,
            device,
            multi,
            dl.CLUSTER_BATCH_SIZE * dl.CLUSTER_SEQ_LEN,
            dl.NUM_WORKERS,
            progress,
            part=part,
        )
        if world > 1:  # the parts in dataset order
            feats = du.gather_in_order(torch.from_numpy(feats)).numpy()
        t_extract = time.perf_counter() - t0

        # 2. Jaccard distance (+ SCP, * STS)
        t0 = time.perf_counter()

        def cluster(cluster_state, feats=feats, epoch=epoch):
            try:
                D = clustering_distance(feats, c.K1, c.K2, scp=scp, scp_lambda=c.CCE_LAMBDA, sts=sts)
            except ValueError as exc:
                raise AuxUSLError(f"epoch {epoch}: the clustering features are unusable ({exc})") from None
            if c.ICDBSCAN_OPTION and not isinstance(D, np.ndarray):
                from auxusl.cluster import densify

                D = densify(D)
            # 3. eps and the clustering object, once, at the first epoch of the process
            if cluster_state is None:
                try:
                    eps = adaptive_eps(D, c.ADAPTIVE_RHO) if c.ADAPTIVE else float(c.EPS)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
                cluster_state = ClusterState(
                    eps, c.MIN_SAMPLES, bool(c.ICDBSCAN_OPTION), c.ICDBSCAN_RELAXED, cannot
                )
                log.info(
                    f"eps for cluster: {eps:.3f} ({'adaptive' if c.ADAPTIVE else 'CLUSTER.EPS'}), kept for "
                    "every later epoch"
                )
            # 4. (IC)DBSCAN
            labels = run_clustering(D, cluster_state, epoch)
            return labels, cluster_state

        if world == 1:
            labels, cluster_state = cluster(cluster_state)
        else:  # rank 0 clusters; its labels and cluster state (eps, ICDBSCAN sets) go to every rank
            result = None
            if main_rank:
                try:
                    result = cluster(cluster_state)
                except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                    result = exc
            result = du.broadcast_object(result)
            if isinstance(result, Exception):
                raise result
            labels, cluster_state = result
        num_clusters = int(labels.max()) + 1
        num_outliers = int((labels < 0).sum())
        if num_clusters == 1:
            log.warning(
                f"WARNING: epoch {epoch + 1}: the pseudo-labels collapsed to one cluster "
                f"({len(labels) - num_outliers} of {len(labels)} training tracklets, the rest outliers): "
                "the identity losses learn nothing; lower CLUSTER.EPS / CLUSTER.ADAPTIVE_RHO"
            )

        # 5. pseudo-labelled tracklets and centroids (raw features)
        pad = max(0, dl.SAMPLE_CONSTRAINT_EXT_SIZE - dl.CLUSTER_SEQ_LEN) // 2
        pseudo, members = [], collections.defaultdict(list)
        for s, label in enumerate(labels.tolist()):
            if label < 0:
                continue
            paths, _, cam = train[s // multi]
            if dl.SAMPLE_CONSTRAINT:
                lo = max(min(sampled[s]) - pad, 0)
                hi = min(max(sampled[s]) + pad, len(paths) - 1)
                paths = paths[lo : hi + 1]
            pseudo.append((paths, label, cam))
            members[label].append(s)
        centroids = np.stack([feats[members[k]].mean(0) for k in range(num_clusters)])

        # 6. RLSCE neighbours; classifier rows of both networks <- normalised centroids
        nmap = (
            neighbour_map(centroids, cfg.MODEL.LOSSES.ID_K, c.K1, c.K2)
            if cfg.MODEL.LOSSES.ID_OPTION == 3
            else None
        )
        with torch.no_grad():
            w = F.normalize(torch.from_numpy(centroids).float(), dim=1).to(device)
            student.classifier.weight[:num_clusters].copy_(w)
            teacher.classifier.weight[:num_clusters].copy_(w)

        # 7. DTI, loader, optimizer
        num_iters = (
            round(dl.ITERS_CLUSTER_MULTIPLIER * num_clusters) if dl.ITERS_CLUSTER_MULTIPLIER > 0 else dl.ITERS
        )
        num_iters = max(1, int(num_iters))
        loader = build_train_loader(
            pseudo,
            dl.TRAIN_SEQ_LEN,
            train_tf,
            dl.TRAIN_BATCH_SIZE,
            dl.NUM_INSTANCE,
            num_iters,
            dl.NUM_WORKERS,
            reader,
            pin_memory=device.type == "cuda",
            rank=rank,
            world=world,
            sync=lambda: du.sync_rng(get_rng_state, set_rng_state),
        )
        if main_rank:
            # written as the original (a pickle), never read back by this code
            atomic_write(
                out_dir / f"cluster_result_{epoch:03}.pickle", lambda f, obj=pseudo: pickle.dump(obj, f)
            )
        optimizer = build_optimizer(cfg, student)
        lr = single_step_lr(cfg, epoch)
        t_cluster = time.perf_counter() - t0
        log.info(
            f"==> epoch {epoch + 1}: {num_clusters} clusters, {num_outliers}/{len(labels)} outliers, "
            f"{num_iters} iterations (DTI); lr {cfg.OPTIM.LR:g} (single_step computes {lr:g}, not applied); "
            f"extract {t_extract:.1f} s, cluster {t_cluster:.1f} s"
        )

        # 8. train
        criteria = {
            "id": build_id_loss(
                cfg.MODEL.LOSSES.ID_OPTION,
                num_clusters,
                cfg.MODEL.LOSSES.CE.EPSILON,
                cfg.MODEL.LOSSES.ID_K,
                nmap,
            ),
            "tri": build_triplet_loss(
                cfg.MODEL.LOSSES.TRI_OPTION, cfg.MODEL.LOSSES.TRI_MARGIN, cfg.MODEL.LOSSES.TRI_LAMBDA
            ),
            "ce_soft": SoftEntropy(),
            "tri_soft": SoftTripletLoss(),
        }
        stats = train_one_epoch(
            student_fwd,
            teacher_fwd,
            loader,
            optimizer,
            criteria,
            num_clusters,
            epoch,
            num_iters,
            device,
            cfg.MUTUAL_TEACH.CE_SOFT_WRIGHT,
            cfg.MUTUAL_TEACH.TRI_SOFT_WRIGHT,
            cfg.MUTUAL_TEACH.ALPHA,
            multi_gpu,
            cfg.OPTIM.FORWARD_BATCH_SIZE,
            cfg.PRINT_PERIOD,
            writer,
            progress,
            amp=str(cfg.MODEL.AMP).lower(),
            gather=gather,
        )
        if world > 1:  # BN running statistics of rank 0 (DataParallel's first replica) everywhere
            du.broadcast_buffers(student)
            du.broadcast_buffers(teacher)

        # 9. evaluate the teacher, keep the best (the original selects on the test set)
        record = {
            "epoch": epoch + 1,
            "eps": cluster_state.eps,
            "clusters": num_clusters,
            "outliers": num_outliers,
            "iters": num_iters,
            "loss": stats["loss"],
            "prec": stats["prec"],
            "extract_s": round(t_extract, 2),
            "cluster_s": round(t_cluster, 2),
            "train_s": round(stats["seconds"], 2),
        }
        is_best = is_best_top1 = False
        if not main_rank:  # rank 0 evaluates, logs and writes
            continue
        if eval_epochs(cfg, epoch):
            t0 = time.perf_counter()
            out = evaluator(teacher)
            metrics = last = out["result"].metrics("stepwise")
            is_best = best is None or metrics["mAP"] > best["mAP"]
            is_best_top1 = best_top1 is None or metrics["rank1"] > best_top1["rank1"]
            if is_best:
                best, best_epoch = dict(metrics, ablation=out["ablation"]), epoch + 1
            if is_best_top1:
                best_top1 = metrics
            record.update(
                mAP=metrics["mAP"], rank1=metrics["rank1"], eval_s=round(time.perf_counter() - t0, 2)
            )
            if out["ablation"]:
                record["ablation"] = out["ablation"]
            writer.add_scalar("eval/mAP", metrics["mAP"], epoch + 1)
            writer.add_scalar("eval/rank1", metrics["rank1"], epoch + 1)
            log.info(
                f"Finished epoch {epoch + 1:3d}  teacher {describe(out['result'])}\n"
                f"Target mAP: {metrics['mAP']:5.1f}  best: {best['mAP']:5.1f}{' *' if is_best else ''}\n"
                f"Target top1: {metrics['rank1']:5.1f}  best: {best_top1['rank1']:5.1f}"
                f"{' *' if is_best_top1 else ''}"
            )
            for name, m in out["ablation"].items():
                log.info(f"    test-time terms {name:12s}: mAP {m['mAP']:5.1f}  rank-1 {m['rank1']:5.1f}")
        history.append(record)
        for key in ("clusters", "outliers", "iters", "eps"):
            writer.add_scalar(f"cluster/{key}", record[key], epoch + 1)
        writer.add_scalar("train/lr", cfg.OPTIM.LR, epoch + 1)
        for key in ("extract_s", "cluster_s", "train_s"):
            writer.add_scalar(f"time/{key[:-2]}", record[key], epoch + 1)
        writer.flush()

        keep_cls = cfg.CHECKPOING.REMAIN_CLASSIFIER
        teacher_sd = teacher.state_dict()
        state = {
            "format": FORMAT,
            "state_dict": teacher_sd,
            "student_dict": student.state_dict(),
            "epoch": epoch + 1,
            "best_mAP": (best["mAP"] / 100) if best else 0.0,
            "best_top1": (best_top1["rank1"] / 100) if best_top1 else 0.0,
            "best": best,
            "best_epoch": best_epoch,
            "best_top1_metrics": best_top1,
            "last": last,
            "initial": initial,
            "initial_ablation": initial_ablation,
            "history": history,
            "optimizer": optimizer.state_dict(),
            "cluster": cluster_state.as_dict(),
            "pseudo_labels": torch.from_numpy(labels),
            "rng": get_rng_state(),
            "elapsed": elapsed + time.perf_counter() - start,
            "config": cfg.dump(),
        }
        save_checkpoint(state, out_dir / "checkpoint_new.pth.tar")
        if is_best or is_best_top1:
            slim = {
                "format": FORMAT,
                "epoch": epoch + 1,
                "student_dict": student.state_dict(),
                "state_dict": teacher_sd
                if keep_cls
                else {k: v for k, v in teacher_sd.items() if not k.startswith("classifier.")},
                "best_mAP": state["best_mAP"],
                "best_top1": state["best_top1"],
                "metrics": last,
                "config": cfg.dump(),
            }
            if is_best:
                save_checkpoint(slim, out_dir / "model_mAP_best.pth.tar")
            if is_best_top1:
                save_checkpoint(slim, out_dir / "model_top1_best.pth.tar")
        log.info(
            f"epoch {epoch + 1} took {time.perf_counter() - epoch_start:.1f} s; eta "
            f"{(time.perf_counter() - epoch_start) * (cfg.OPTIM.EPOCHS - epoch - 1):.0f} s"
        )
    writer.close()
    if not main_rank:
        return 0

    if best is None:
        raise CheckpointError(
            f"nothing to report: no epoch was evaluated (OPTIM.EPOCHS {cfg.OPTIM.EPOCHS}, "
            f"resumed at epoch {start_epoch})"
        )
    wall = elapsed + time.perf_counter() - start
    common = {k: v for k, v in best.items() if k != "ablation"}
    target = datasets.SHORT[datasets.canonical(cfg.DATASETS.TARGET)]
    write_results(
        out_dir,
        method="auxusl",
        variant=variant,
        target=target,
        scale=cfg.SCALE,
        common=common,
        native=dict(common, ap=NATIVE_AP),
        initial=initial,
        epochs=cfg.OPTIM.EPOCHS,
        wall_seconds=wall,
        command="python examples/train.py " + " ".join(argv),
        config=config_dict(cfg),
        selection="best-on-test",
        last=last,
        best_epoch=best_epoch,
        history=history,
        auxiliary={k: bool(cfg_get(cfg, k)) for k in AUX_KEYS},
        test_time_ablation=best.get("ablation") or None,
        initial_test_time_ablation=initial_ablation,
        load_average={
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        native_note="AuxUSL computes step-wise AP (open-reid evaluator with sklearn "
        "average_precision_score), the common flavour: native = common",
    )
    log.info(
        f"==> best epoch {best_epoch}: mAP {common['mAP']:.1f} rank-1 {common['rank1']:.1f} (initial mAP "
        f"{initial['mAP']:.1f}); last mAP {last['mAP']:.1f}; wall {wall:.1f} s; results in "
        f"{out_dir / 'results.json'}"
    )
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg, args = setup(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:  # the resolved configuration; nothing read or written
        sys.stdout.write(cfg.dump())
        return 0
    out_dir = Path(cfg.OUTPUT_DIR)
    try:  # before anything is written
        resumed = preflight(cfg)
    except AuxUSLError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create OUTPUT_DIR {out_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun: only rank 0 writes log.txt
    logging_ctx = run_logging(out_dir, append=bool(cfg.RESUME)) if main_rank else contextlib.nullcontext()
    with logging_ctx:
        if args.resume or args.eval_only:
            log.warning(
                "WARNING: --resume / --eval-only do nothing (as in the original): use RESUME <checkpoint> "
                "and TEST.EVAL_ONLY True"
            )
        try:
            return run(cfg, argv, resumed)
        except (AuxUSLError, AuxInfoError) as exc:
            report_error(f"error: {short_message(exc)}")
            return 2
        except EvaluationError as exc:
            report_error(f"error: {short_message(exc)}; check the query and gallery splits of the dataset")
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
