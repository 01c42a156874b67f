"""The run plumbing of ``examples/train.py``, the same in every run, one function each: checking
the configuration, the preflight of the run folder, set-up, building the models, ``resume_or_load``
(the one place that decides between a fresh run, a resume and an evaluation of a checkpoint),
eval-only, the initial evaluation, the torchrun / DataParallel wrappers, clustering on process 0,
best/last bookkeeping, TensorBoard, the checkpoint of an epoch, results.json and main()'s error
handling. The algorithm's steps stay in ``examples/train.py``'s epoch loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from common_eval import EvaluationError
from common_eval.results import write_results

from . import datasets, models
from .data import build_test_transform, build_train_transform
from .errors import AuxInfoError, AuxUSLError, CheckpointError, ConfigError, short_message
from .evaluation import NATIVE_AP, describe
from .models import create_teacher
from .models.ghost_bn import set_ghost_bn
from .utils import (
    copy_weights,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from .utils import distributed as du
from .utils.checkpoint import FORMAT
from .utils.logging import report_error, run_logging, tensorboard_writer
from .utils.runfiles import (
    atomic_write,
    check_fresh_folder,
    check_resume,
    disk_full_line,
    dumps_strict,
    remove_stale_tmp,
)

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
# keys added after checkpoints were written, with the value that runs as those checkpoints did
ADDED_KEYS = {"DATALOADER.MAX_ITERS": 0}
NATIVE_NOTE = (
    "AuxUSL computes step-wise AP (open-reid evaluator with sklearn average_precision_score), the "
    "common flavour: native = common"
)


# ------------------------------------------------------------------------------ configuration
def cfg_get(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def variant_of(cfg) -> str:
    """ "ours" with any auxiliary-information module on, "ours-" without (the paper's rows)."""
    return "ours" if any(cfg_get(cfg, k) for k in AUX_KEYS) else "ours-"


def config_dict(cfg) -> dict:
    """The resolved configuration as plain dicts, lists and scalars."""
    return json.loads(json.dumps(cfg, default=lambda o: dict(o)))


def flat_config(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_config(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return out


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
    if cfg.SCALE not in ("paper", "smoke", "rehearsal"):
        raise ConfigError(f"SCALE must be paper, smoke or rehearsal, got {cfg.SCALE!r}")
    if str(cfg.MODEL.AMP).lower() not in ("off", "bf16", "fp16"):
        raise ConfigError(f"MODEL.AMP must be off, bf16 or fp16, got {cfg.MODEL.AMP!r}")
    if cfg.MODEL.BN_SLICES < 1:
        raise ConfigError(f"MODEL.BN_SLICES must be >= 1, got {cfg.MODEL.BN_SLICES}")
    if not cfg.CHECKPOING.SAVE_STEP:
        raise ConfigError("CHECKPOING.SAVE_STEP must hold at least one value")


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


def check_resume_config(cfg, ckpt: dict) -> None:
    """RESUME continues the run as it was trained: a configuration that differs from the one
    stored in the checkpoint in anything but run plumbing is refused, listing the differences.
    A checkpoint without a stored configuration (the original's) is resumed; the configuration
    is stored from its next save on."""
    saved = stored_config(ckpt)
    if saved is not None:
        check_resume({**ADDED_KEYS, **flat_config(saved)}, flat_config(config_dict(cfg)), RESUME_MAY_CHANGE)


def stored_config(ckpt: dict) -> dict | None:
    """The configuration a checkpoint of this code was trained with ("config": a plain dict, or
    the YAML text earlier versions stored), as a dict; None for the original's checkpoints,
    which carry none."""
    import yaml

    saved = ckpt.get("config")
    if isinstance(saved, str):
        try:
            saved = yaml.safe_load(saved)
        except yaml.YAMLError:
            return None
    return saved if isinstance(saved, dict) else None


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


def build_model(cfg, num_classes: int, pretrained: str | None = None):
    try:
        return models.create(
            cfg.MODEL.ARCH,
            num_classes,
            pretrained_source(cfg) if pretrained is None else pretrained,
            cfg.MODEL.BACKBONE.LAST_STRIDE,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def build_student_and_teacher(cfg, num_classes: int, device, pretrained: str | None = None):
    """The student and its EMA teacher, same start (the original loads the same ImageNet
    weights into both), on ``device``. ``pretrained="none"`` where a checkpoint's weights replace
    them anyway (evaluation)."""
    student = build_model(cfg, num_classes, pretrained)
    teacher = create_teacher(student)
    student.to(device)
    if cfg.MODEL.CHANNELS_LAST:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    teacher.to(device)
    return student, teacher


def build_optimizer(cfg, model):
    """A new optimizer over every parameter (the original builds one per epoch): ``auxusl.optim``."""
    from .optim import build_optimizer as build

    return build(cfg.OPTIM, model)


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


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


# ------------------------------------------------------------------------------- set-up, state
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


def set_up(cfg, argv):
    """Threads, cuDNN, seeds, the device, torchrun's process group, the run folder's config.yaml
    (stale temporary files of an interrupted write removed; TEST.EVAL_ONLY: eval_config.yaml, and
    nothing removed): (device, rank, world, progress)."""
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
    check_world(cfg, world)
    if du.is_dist() and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    progress = None if cfg.PROGRESS and main_rank else False
    log.info(f"Command line arguments: {' '.join(argv)}")
    log.info(f"Running with full config:\n{cfg.dump()}")
    if main_rank and cfg.TEST.EVAL_ONLY:
        # evaluating (often in the folder of the run that trained the checkpoint): the run's own
        # config.yaml and the temporary files of a training that may still be running are left alone
        write_text(out_dir / "eval_config.yaml", cfg.dump())
    elif main_rank:
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
        + (f"; torchrun process group ({du.backend()}), rank {rank} of {world}" if du.is_dist() else "")
    )
    return device, rank, world, progress


@dataclass
class RunState:
    """What a run carries from epoch to epoch and into its checkpoints: where it starts, the
    best (mAP and rank-1) and last evaluations, the initial model's, the history, the clustering
    state (eps fixed at the first epoch), the time spent before a resume."""

    t_start: float = field(default_factory=time.perf_counter)
    start_epoch: int = 0
    best: dict | None = None
    best_epoch: int = -1
    best_top1: dict | None = None
    last: dict | None = None
    initial: dict | None = None
    initial_ablation: dict | None = None
    history: list = field(default_factory=list)
    elapsed: float = 0.0
    cluster_state: object = None
    rng: object = None

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.t_start

    def restore_rng(self) -> None:
        """A resumed run continues the checkpoint's random streams; call it last in the set-up
        (everything before may have drawn random numbers)."""
        if self.rng is not None:
            set_rng_state(self.rng)

    def evaluated(self, out: dict, epoch: int):
        """Records an evaluation of epoch ``epoch`` (0-based): (metrics, is_best, is_best_top1)."""
        metrics = self.last = out["result"].metrics("stepwise")
        is_best = self.best is None or metrics["mAP"] > self.best["mAP"]
        is_best_top1 = self.best_top1 is None or metrics["rank1"] > self.best_top1["rank1"]
        if is_best:
            self.best, self.best_epoch = dict(metrics, ablation=out["ablation"]), epoch + 1
        if is_best_top1:
            self.best_top1 = metrics
        return metrics, is_best, is_best_top1


def resume_or_load(cfg, resumed, student, teacher, t_start: float) -> RunState:
    """The one place that decides how a run starts: a fresh run (nothing to load), an evaluation
    of RESUME's teacher (TEST.EVAL_ONLY: its weights in both networks), or a resume (weights of
    both networks, epoch, and for this code's checkpoints the bookkeeping, the clustering state and
    the random streams; the original's checkpoints give weights, epoch and best scores only).
    ``resumed``: the checkpoint preflight() loaded and checked, if any."""
    state = RunState(t_start=t_start)
    if not cfg.RESUME:
        return state
    ckpt = resumed if resumed is not None else load_checkpoint(cfg.RESUME)  # checked by preflight
    if "state_dict" not in ckpt:
        raise CheckpointError(
            f"{cfg.RESUME} holds no 'state_dict' (teacher weights); keys: {', '.join(sorted(ckpt)[:8])}"
        )
    copy_weights(teacher, ckpt["state_dict"], cfg.RESUME)
    if cfg.TEST.EVAL_ONLY:
        copy_weights(student, ckpt["state_dict"], cfg.RESUME)
        return state
    if "student_dict" not in ckpt:
        raise CheckpointError(f"{cfg.RESUME} holds no 'student_dict': it cannot resume training")
    copy_weights(student, ckpt["student_dict"], cfg.RESUME)
    state.start_epoch = int(ckpt["epoch"])
    if ckpt.get("format") == FORMAT:
        from .cluster import ClusterState

        state.best, state.best_epoch = ckpt["best"], ckpt["best_epoch"]
        state.best_top1 = ckpt["best_top1_metrics"]
        state.last, state.initial, state.history = ckpt["last"], ckpt["initial"], list(ckpt["history"])
        state.initial_ablation = ckpt.get("initial_ablation")
        state.elapsed = float(ckpt["elapsed"])
        state.cluster_state = ClusterState.from_dict(ckpt["cluster"]) if ckpt.get("cluster") else None
        state.rng = ckpt["rng"]
    else:
        log.warning(
            f"WARNING: {cfg.RESUME} is an original AuxUSL checkpoint: weights, epoch and best "
            "scores only (eps is re-estimated, as the original does)"
        )
    log.info(
        f"=> Start epoch {state.start_epoch + 1}\tBest mAP: {float(ckpt.get('best_mAP', 0)):5.1%}\t"
        f"Best top1: {float(ckpt.get('best_top1', 0)):5.1%}"
    )
    return state


def log_ablation(ablation: dict, width: int = 12) -> None:
    for name, m in ablation.items():
        log.info(f"    test-time terms {name:{width}s}: mAP {m['mAP']:5.1f}  rank-1 {m['rank1']:5.1f}")


def evaluate_only(cfg, evaluator, teacher, out_dir: Path) -> dict:
    """TEST.EVAL_ONLY: evaluates RESUME's teacher, logs it and writes eval_results.json.
    Returns the evaluator's output (distances included)."""
    log.info("Eval ONLY")
    out = evaluator(teacher)
    log.info(f"==> teacher of {cfg.RESUME or 'the initial model'}: {describe(out['result'])}")
    for name, m in out["ablation"].items():
        log.info(f"    test-time terms {name}: mAP {m['mAP']:.1f} rank-1 {m['rank1']:.1f}")
    record = {
        "checkpoint": cfg.RESUME,
        "variant": variant_of(cfg),
        **out["result"].metrics("stepwise"),
        "ablation": out["ablation"],
    }
    if "rerank" in out:
        log.info(f"==> re-ranked: {describe(out['rerank'])}")
        record["rerank"] = out["rerank"].metrics("stepwise")
    write_text(out_dir / "eval_results.json", dumps_strict(record, indent=1) + "\n")
    return out


class NoWriter:
    """The TensorBoard writer of ranks other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def open_writer(out_dir: Path, main_rank: bool):
    return tensorboard_writer(out_dir) if main_rank else NoWriter()


def evaluate_initial(state: RunState, evaluator, teacher, writer) -> None:
    """The model before training (once per run, not again on a resume), logged at step 0."""
    t0 = time.perf_counter()
    out = evaluator(teacher)
    state.initial, state.initial_ablation = out["result"].metrics("stepwise"), out["ablation"] or None
    log.info(
        f"==> initial model (before training): {describe(out['result'])} ({time.perf_counter() - t0:.1f} s)"
    )
    log_ablation(out["ablation"])
    writer.add_scalar("eval/mAP", state.initial["mAP"], 0)
    writer.add_scalar("eval/rank1", state.initial["rank1"], 0)


def wrap_distributed(cfg, student, teacher, device, world: int):
    """DataParallel over GPU_Device (the original's multi-GPU path), ghost BN where one device
    emulates the replicas' BN statistics, DistributedDataParallel under torchrun, one process
    included (whole-batch losses on every rank through ``gather``; the teacher is not wrapped,
    EMA only): (student_fwd, teacher_fwd, multi_gpu, gather)."""
    student_fwd, teacher_fwd = student, teacher
    if device.type == "cuda" and len(cfg.GPU_Device) > 1 and torch.cuda.device_count() > 1:
        student_fwd, teacher_fwd = nn.DataParallel(student), nn.DataParallel(teacher)
    multi_gpu = len(cfg.GPU_Device) > 1 or du.is_dist()  # DDP: one forward per step
    if multi_gpu and student_fwd is student:
        set_ghost_bn(student, cfg.MODEL.BN_SLICES // world)
        set_ghost_bn(teacher, cfg.MODEL.BN_SLICES // world)
    gather = None
    if du.is_dist():
        ids = [device.index] if device.type == "cuda" else None
        student_fwd = nn.parallel.DistributedDataParallel(student, device_ids=ids)
        gather = du.gather_with_grad
    return student_fwd, teacher_fwd, multi_gpu, gather


def run_on_main(fn, world: int, main_rank: bool):
    """fn() on process 0 alone, its result (or its exception, re-raised) on every process."""
    if world == 1:
        return fn()
    result = None
    if main_rank:
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            result = exc
    result = du.broadcast_object(result)
    if isinstance(result, Exception):
        raise result
    return result


def sync_bn_buffers(student, teacher, world: int) -> None:
    """BN running statistics of rank 0 (DataParallel's first replica) on every process."""
    if world > 1:
        du.broadcast_buffers(student)
        du.broadcast_buffers(teacher)


# ----------------------------------------------------------------------- epoch bookkeeping
def gpu_peak_mb(device) -> float | None:
    """The largest GPU memory this process allocated since it started (MiB); None on the CPU."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def log_evaluation(epoch: int, out: dict, state: RunState, is_best: bool, is_best_top1: bool, writer) -> None:
    metrics = state.last
    writer.add_scalar("eval/mAP", metrics["mAP"], epoch + 1)
    writer.add_scalar("eval/rank1", metrics["rank1"], epoch + 1)
    log.info(
        f"Finished epoch {epoch + 1:3d}  teacher {describe(out['result'])}\n"
        f"Target mAP: {metrics['mAP']:5.1f}  best: {state.best['mAP']:5.1f}{' *' if is_best else ''}\n"
        f"Target top1: {metrics['rank1']:5.1f}  best: {state.best_top1['rank1']:5.1f}"
        f"{' *' if is_best_top1 else ''}"
    )
    log_ablation(out["ablation"])


def log_epoch(writer, record: dict, lr: float, seconds: float) -> None:
    """The epoch's clustering, rate and timings in TensorBoard (record: the history entry;
    seconds: the whole epoch's). The tags shared by the repository's five methods: cluster/clusters,
    cluster/outliers, train/lr, time/epoch (and eval/mAP, eval/rank1, train/loss elsewhere)."""
    epoch = record["epoch"]
    writer.add_scalar("time/epoch", seconds, epoch)
    for key in ("clusters", "outliers", "iters", "eps"):
        writer.add_scalar(f"cluster/{key}", record[key], epoch)
    writer.add_scalar("train/lr", lr, epoch)
    for phase, value in record["seconds"].items():  # extract, cluster, train, evaluate
        writer.add_scalar(f"time/{phase}", value, epoch)
    writer.flush()


def save_epoch(cfg, out_dir: Path, epoch: int, state: RunState, student, teacher, optimizer, labels,
               is_best: bool, is_best_top1: bool) -> None:
    """checkpoint_new.pth.tar (everything a resume needs) and, when the epoch is the best so far,
    model_mAP_best / model_top1_best (weights, scores, configuration; the original's file names)."""
    keep_cls = cfg.CHECKPOING.REMAIN_CLASSIFIER
    teacher_sd = teacher.state_dict()
    full = {
        "format": FORMAT,
        "state_dict": teacher_sd,
        "student_dict": student.state_dict(),
        "epoch": epoch + 1,
        "best_mAP": (state.best["mAP"] / 100) if state.best else 0.0,
        "best_top1": (state.best_top1["rank1"] / 100) if state.best_top1 else 0.0,
        "best": state.best,
        "best_epoch": state.best_epoch,
        "best_top1_metrics": state.best_top1,
        "last": state.last,
        "initial": state.initial,
        "initial_ablation": state.initial_ablation,
        "history": state.history,
        "optimizer": optimizer.state_dict(),
        "cluster": state.cluster_state.as_dict(),
        "pseudo_labels": torch.from_numpy(labels),
        "rng": get_rng_state(),
        "elapsed": state.wall(),
        "config": config_dict(cfg),
    }
    save_checkpoint(full, out_dir / "checkpoint_new.pth.tar")
    if is_best or is_best_top1:
        slim = {
            "format": FORMAT,
            "epoch": epoch + 1,
            "student_dict": student.state_dict(),
            "state_dict": teacher_sd
            if keep_cls
            else {k: v for k, v in teacher_sd.items() if not k.startswith("classifier.")},
            "best_mAP": full["best_mAP"],
            "best_top1": full["best_top1"],
            "metrics": state.last,
            "config": config_dict(cfg),
        }
        if is_best:
            save_checkpoint(slim, out_dir / "model_mAP_best.pth.tar")
        if is_best_top1:
            save_checkpoint(slim, out_dir / "model_top1_best.pth.tar")


def write_final_results(cfg, out_dir: Path, state: RunState, argv, load_start) -> None:
    """results.json: the best epoch's metrics (selected on the test set, as the original), the
    initial and last ones, the history, the test-time ablation and the run's settings."""
    if state.best is None:
        raise CheckpointError(
            f"nothing to report: no epoch was evaluated (OPTIM.EPOCHS {cfg.OPTIM.EPOCHS}, "
            f"resumed at epoch {state.start_epoch})"
        )
    wall = state.wall()
    best, initial, last = state.best, state.initial, state.last
    common = {k: v for k, v in best.items() if k != "ablation"}
    target = datasets.SHORT[datasets.canonical(cfg.DATASETS.TARGET)]
    write_results(
        out_dir,
        method="auxusl",
        variant=variant_of(cfg),
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
        best_epoch=state.best_epoch,
        history=state.history,
        auxiliary={k: bool(cfg_get(cfg, k)) for k in AUX_KEYS},
        test_time_ablation=best.get("ablation") or None,
        initial_test_time_ablation=state.initial_ablation,
        load_average={
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        native_note=NATIVE_NOTE,
    )
    log.info(
        f"==> best epoch {state.best_epoch}: mAP {common['mAP']:.1f} rank-1 {common['rank1']:.1f} "
        f"(initial mAP "
        f"{initial['mAP']:.1f}); last mAP {last['mAP']:.1f}; wall {wall:.1f} s; results in "
        f"{out_dir / 'results.json'}"
    )


# ------------------------------------------------------------------------------------- main()
def guarded_main(cfg, args, body) -> int:
    """preflight, the run folder and its log.txt (process 0), then body(resumed); a problem the
    user can fix is one 'error: ...' line (stderr and log.txt) and exit status 2, anything else
    keeps its traceback."""
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
        if getattr(args, "resume", False) or getattr(args, "eval_only", False):
            log.warning(
                "WARNING: --resume / --eval-only do nothing (as in the original): use RESUME <checkpoint> "
                "and TEST.EVAL_ONLY True"
            )
        try:
            return body(resumed)
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
