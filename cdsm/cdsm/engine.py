"""The run plumbing of ``examples/train.py``, the same in every run, one function each: the run
folder's preflight, set-up, reading the checkpoints, ``resume_or_load`` (the one place that decides
between a fresh run and a resume), the torchrun wrappers, the initial evaluation, best/last
bookkeeping, TensorBoard, the checkpoint of an epoch, results.json and main()'s error handling.
Plain arguments only: the flags stay in ``examples/options.py``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from common_eval import EvaluationError
from common_eval.results import write_results

from . import evaluation
from .errors import CDSMError, CheckpointError, short_message
from .optim import load_optimizer_state
from .utils import distributed as du
from .utils.checkpoint import (
    FORMAT,
    checkpoint_config,
    load_checkpoint,
    load_model_state,
    model_state,
    save_checkpoint,
)
from .utils.logging import report_error, run_logging, tensorboard_writer
from .utils.runfiles import check_fresh_folder, check_resume, disk_full_line, remove_stale_tmp
from .utils.seed import get_rng_state, seed_everything, set_rng_state

log = logging.getLogger("cdsm.engine")
TARGET = {"market1501": "market", "dukemtmcreid": "duke", "msmt17": "msmt17"}
NATIVE_NOTE = ("CDSM computes step-wise AP (sklearn >= 0.19 average_precision_score), the common flavour: "
               "native = common")


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ------------------------------------------------------------------------------- main()
def preflight(logs_dir: Path, resume: str) -> None:
    """A run never writes into a folder that holds another run: a fresh run, or a resume of a
    checkpoint from elsewhere, needs a folder of its own. Creates the folder."""
    own = logs_dir / "checkpoint.pth.tar"
    if not (resume and own.exists() and own.samefile(resume)):
        check_fresh_folder(logs_dir, f"--resume {own}", "another --logs-dir")
    logs_dir.mkdir(parents=True, exist_ok=True)


def guarded_main(logs_dir, resume: str, dataset: str, body) -> int:
    """body() inside the run folder (log.txt on process 0); a problem the user can fix is one
    'error: ...' line (stderr and log.txt) and exit status 2, anything else keeps its traceback."""
    logs_dir = Path(logs_dir)
    try:
        preflight(logs_dir, resume)
    except CDSMError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc) or f"error: cannot create {logs_dir}: {exc.strerror or exc}"
        print(line, file=sys.stderr)
        return 2
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun: process 0 alone writes log.txt
    with run_logging(logs_dir, append=bool(resume)) if main_rank else contextlib.nullcontext():
        try:
            return body()
        except CDSMError as exc:
            report_error(f"error: {short_message(exc)}")
            return 2
        except EvaluationError as exc:
            report_error(f"error: cannot evaluate on {dataset}: {exc}")
            return 2
        except OSError as exc:
            line = disk_full_line(exc)
            if line is None:
                raise
            report_error(line)
            return 2
        finally:
            du.cleanup()


# ------------------------------------------------------------------------------- set-up
def check_world(batch_size: int, bn_slices: int, world: int) -> None:
    """torchrun's process count must split the batch and the BN slices evenly."""
    if batch_size % world:
        raise CDSMError(f"--batch-size {batch_size} cannot be split evenly over {world} processes: "
                        f"use a multiple of {world}")
    if bn_slices % world:
        raise CDSMError(f"--bn-slices {bn_slices} is not a multiple of the {world} processes (each "
                        f"normalises bn_slices / {world} slices of its part): use --bn-slices {world} or a "
                        "multiple of it")


def set_up(logs_dir: Path, *, seed: int, device: str, num_threads: int | None, batch_size: int,
           bn_slices: int) -> tuple[torch.device, int, int]:
    """Threads, deterministic cuDNN, seeds, the device and torchrun's process group:
    returns (device, rank, world size)."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    seed_everything(seed)
    dev = pick_device(device)
    rank, world = du.init_from_env(dev.type)
    if du.is_dist():  # torchrun, one process included
        check_world(batch_size, bn_slices, world)
        if dev.type == "cuda":
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev, rank, world


def read_checkpoints(logs_dir: Path, resume: str, resume_ema: str, config: dict, may_change,
                     main_rank: bool) -> tuple[dict | None, dict | None]:
    """Every checkpoint is read (safely) and checked before anything is written; then the
    temporary files of killed writes are removed. Returns (resume checkpoint, teacher checkpoint)."""
    ckpt = load_checkpoint(resume) if resume else None
    if ckpt is not None and checkpoint_config(ckpt):
        check_resume(checkpoint_config(ckpt), config, may_change)
    ema_ckpt = load_checkpoint(resume_ema) if resume_ema else None
    if main_rank:
        for path in remove_stale_tmp(logs_dir):
            log.info(f"==> removed {path.name}, the temporary file of an interrupted write")
    return ckpt, ema_ckpt


# ------------------------------------------------------------------------------- resume
@dataclass
class RunState:
    """What a run carries from epoch to epoch besides the models: the best and last evaluated
    metrics, the initial model's, the per-epoch history and the time spent before a resume."""
    start_epoch: int = 0
    best: dict | None = None
    best_epoch: int = -1
    last: dict | None = None
    initial: dict | None = None
    history: list = field(default_factory=list)
    elapsed: float = 0.0
    rng: dict | None = None  # the RNG states to restore, once everything before the loop has drawn
    t_start: float = field(default_factory=time.perf_counter)

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.t_start

    def restore_rng(self) -> None:
        if self.rng is not None:
            set_rng_state(self.rng)

    def evaluated(self, metrics: dict, epoch: int) -> bool:
        """Records an epoch's metrics as the last; returns whether they are the best so far."""
        self.last = metrics
        is_best = self.best is None or metrics["mAP"] > self.best["mAP"]
        if is_best:
            self.best, self.best_epoch = metrics, epoch
        return is_best


def resume_or_load(ckpt: dict | None, resume: str, ema_ckpt: dict | None, resume_ema: str, student, teacher,
                   optimizer, scheduler, t_start: float) -> RunState:
    """The one place that decides how a run starts: fresh (no checkpoint), resumed from one of
    ours (weights, optimizer, scheduler, bookkeeping and RNG states), or from an original CDSM
    checkpoint (the student's weights and the epoch); --resume-ema then sets the teacher's weights."""
    state = RunState(t_start=t_start)
    if ckpt is not None:
        if ckpt.get("format") == FORMAT:
            load_model_state(student, ckpt["student"], resume)
            load_model_state(teacher, ckpt["teacher"], resume)
            load_optimizer_state(optimizer, ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            state = RunState(start_epoch=ckpt["epoch"], best=ckpt["best"], best_epoch=ckpt["best_epoch"],
                             last=ckpt["last"], initial=ckpt["initial"], history=list(ckpt["history"]),
                             elapsed=float(ckpt["elapsed"]), rng=ckpt["rng"], t_start=t_start)
            best = state.best
            log.info(f"==> resumed from {resume}: {state.start_epoch} epoch(s) done, best mAP "
                     f"{best['mAP'] if best else float('nan'):.1f} (epoch {state.best_epoch})")
        else:  # an original CDSM checkpoint: weights (and epoch) only
            load_model_state(student, model_state(ckpt, "student"), resume)
            state.start_epoch = int(ckpt.get("epoch", 0))
            log.warning(f"WARNING: {resume} is an original CDSM checkpoint: it restores the "
                        "student's weights and the epoch only (no optimizer, teacher or RNG state)")
    if ema_ckpt is not None:
        load_model_state(teacher, model_state(ema_ckpt, "teacher"), resume_ema)
        log.info(f"==> teacher weights from {resume_ema}")
    return state


# ------------------------------------------------------------------------------- torchrun
def wrap_distributed(student, teacher, device: torch.device, rank: int, world: int, seed: int):
    """Under torchrun (also with one process): the teacher of process 0 everywhere, the student in
    DistributedDataParallel, the memory updated with the whole batch (gather), and the augmentations
    of processes other than 0 drawn from their own stream. Returns (the student to call, gather);
    (student, None) without torchrun."""
    if not du.is_dist():
        return student, None
    du.broadcast_state(teacher)
    ids = [device.index] if device.type == "cuda" else None
    student_fwd = torch.nn.parallel.DistributedDataParallel(student, device_ids=ids)
    log.info(f"==> torchrun: DistributedDataParallel over {world} process(es), "
             f"{torch.distributed.get_backend()}")
    if rank != 0:  # augmentations: process 0 draws as a single process, the others their own
        seed_everything(epoch_seed(seed, 1000 + rank))
    return student_fwd, du.gather_batch


def sync_bn_buffers(student, teacher, world: int) -> None:
    """BN running statistics of process 0 (DataParallel's first replica) everywhere."""
    if world > 1:
        du.broadcast_state(student, buffers_only=True)
        du.broadcast_state(teacher, buffers_only=True)


# ------------------------------------------------------------------------------- bookkeeping
class NoWriter:
    """The TensorBoard writer of processes other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    def flush(self):
        pass

    def close(self):
        pass


def open_writer(logs_dir: Path, main_rank: bool):
    return tensorboard_writer(logs_dir) if main_rank else NoWriter()


def evaluate_initial(teacher, query_loader, gallery_loader, dataset, device, progress, writer) -> dict:
    """The starting model's metrics (results.json 'initial'), logged as epoch 0 in TensorBoard."""
    t0 = time.perf_counter()
    result = evaluation.evaluate_model(teacher, query_loader, gallery_loader, dataset.query, dataset.gallery,
                                       device, progress=progress)
    initial = result.metrics("stepwise")
    log.info(f"==> initial model (before training): {evaluation.describe(result)}  "
             f"({time.perf_counter() - t0:.1f} s)")
    writer.add_scalar("eval/mAP", initial["mAP"], 0)
    writer.add_scalar("eval/rank1", initial["rank1"], 0)
    return initial


PHASES = ("extract", "cluster", "train", "evaluate")


def epoch_costs(seconds: dict, *, train_images: int, extract_images: int, device: torch.device) -> dict:
    """The cost keys every method's history entries share: "seconds" of the four phases (0.0 for
    one that did not run: extract = the training set's features for clustering, cluster = Jaccard
    distance + DBSCAN (+ reliability, memory), train, evaluate = test-set extraction + ranking),
    "images" through the network (the training forward's, the extraction's for clustering) and
    "gpu_peak_mb", the peak GPU memory allocated since the run started (None on a CPU)."""
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"seconds": {p: round(float(seconds.get(p, 0.0)), 2) for p in PHASES},
            "images": {"train": int(train_images), "extract": int(extract_images)},
            "gpu_peak_mb": None if peak is None else round(peak, 1)}


def log_epoch(writer, record: dict) -> None:
    """An epoch's clustering counts, learning rate and timings in TensorBoard: the tags shared by
    the five methods (cluster/clusters, cluster/outliers, train/lr, time/epoch = the epoch's
    seconds from extraction to evaluation, time/extract, time/cluster, time/train, time/evaluate)
    and CDSM's own (cluster/reliable), at step = the epoch's index."""
    epoch = record["epoch"]
    for key in ("clusters", "outliers", "reliable"):
        if record[key] is not None:
            writer.add_scalar(f"cluster/{key}", record[key], epoch)
    writer.add_scalar("train/lr", record["lr"], epoch)
    for phase, seconds in record["seconds"].items():
        writer.add_scalar(f"time/{phase}", seconds, epoch)
    writer.add_scalar("time/epoch", record["epoch_s"], epoch)
    writer.flush()


def save_epoch(logs_dir: Path, epoch: int, state: RunState, student, teacher, optimizer, scheduler, memory,
               num_clusters: int, labels, config: dict, is_best: bool) -> None:
    """checkpoint.pth.tar: everything that determines the rest of the run; model_best.pth.tar: the
    teacher of the best epoch."""
    ckpt = {"format": FORMAT, "epoch": epoch + 1, "student": student.state_dict(),
            "teacher": teacher.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "best": state.best, "best_epoch": state.best_epoch,
            "last": state.last, "initial": state.initial, "history": state.history,
            "memory": {"name": memory.name, "num_clusters": num_clusters, "state": memory.state_dict()},
            "pseudo_labels": torch.from_numpy(labels), "rng": get_rng_state(),
            "elapsed": state.wall(), "config": config}
    save_checkpoint(ckpt, logs_dir / "checkpoint.pth.tar")
    if is_best:
        save_checkpoint({"format": FORMAT, "epoch": epoch + 1, "teacher": teacher.state_dict(),
                         "metrics": state.best, "config": config}, logs_dir / "model_best.pth.tar")


def write_final_results(logs_dir: Path, state: RunState, *, dataset: str, scale: str, epochs: int,
                        command: str, config: dict, memorybank: str) -> None:
    """results.json (best-on-test, as the original reports) and the closing line."""
    best, last, initial = state.best, state.last, state.initial
    if best is None:
        raise CheckpointError(f"nothing to report: the run has no evaluated epoch (--epochs {epochs})")
    wall = state.wall()
    native = dict(best, ap=evaluation.NATIVE_AP)
    write_results(logs_dir, method="cdsm", target=TARGET[dataset], scale=scale, common=best,
                  native=native, initial=initial, epochs=epochs, wall_seconds=wall, command=command,
                  config=config, selection="best-on-test", last=last,
                  variant=None if memorybank == "CMhybrid_v5" else memorybank,
                  best_epoch=state.best_epoch, history=state.history, native_note=NATIVE_NOTE)
    log.info(f"==> best epoch {state.best_epoch}: mAP {best['mAP']:.1f} rank-1 {best['rank1']:.1f} "
             f"(initial mAP {initial['mAP']:.1f}); last epoch mAP {last['mAP']:.1f}; "
             f"wall {wall:.1f} s; results in {logs_dir / 'results.json'}")
