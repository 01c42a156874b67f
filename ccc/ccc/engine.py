"""The plumbing of a 3C run, the same in every run; ``examples/train.py`` keeps the epoch loop
(extract -> cluster -> memory -> train -> evaluate -> checkpoint) and calls these, with plain
arguments (no argparse, no YAML), one function each:

    preflight           the run-folder guard before anything is written; loads --resume's checkpoint
    start_run           set-up: folders, threads, seeds, device, torchrun, config.yaml
    resume_or_load      the one place that decides a fresh run or a resumed one (as fast-reid's
                        ``DefaultTrainer.resume_or_load``): the bookkeeping of the run (RunState)
    sync_epoch_rng, cluster_on_rank0, wrap_distributed
                        the torchrun wrappers (no-ops in a single process)
    RunState.evaluated  best/last bookkeeping (best-on-test over the scheduled evaluations)
    epoch_costs         the history entry's phase seconds, image counts and peak GPU memory
    log_epoch           the epoch's TensorBoard scalars
    save_epoch          checkpoint.pth.tar (everything --resume needs), model_best, model_eN
    write_final_results results.json and the closing line
    guarded_main        main()'s error handling: one 'error: ...' line and exit 2

Multi-GPU [added]: under torchrun every rank extracts its contiguous shard of the training set
and the features are gathered in dataset order; rank 0 clusters and broadcasts the pseudo-labels
(or its error); every rank draws the same global batches and takes its 1/N slice; the memory is
updated with the gathered global batch on every rank (ccc/trainer.py); rank 0 alone evaluates and
writes logs, TensorBoard, checkpoints and results.json; the BN running statistics of rank 0 go to
every rank after each epoch. A single process (no torchrun) is unchanged.
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

import numpy as np
import torch
import yaml

from common_eval import EvaluationError
from common_eval.results import write_results

from .errors import CCCError, CheckpointError, short_message
from .memory import create_memory
from .utils import distributed as du
from .utils.checkpoint import FORMAT, load_checkpoint, load_model_state, save_checkpoint
from .utils.logging import report_error, run_logging
from .utils.runfiles import atomic_write, check_fresh_folder, check_resume, disk_full_line, remove_stale_tmp
from .utils.seed import get_rng_state, seed_everything, set_rng_state

log = logging.getLogger("ccc.train")
STREAMS = {"cluster": 1, "sampler": 2, "augment": 3}   # independent seed streams per epoch


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """The seed of one stream (cluster, sampler, augment) of one epoch."""
    return int(np.random.SeedSequence([seed, epoch, STREAMS[stream]]).generate_state(1)[0])


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_dirs(log_dir, ckpt_dir=None) -> tuple[Path, Path]:
    """The run's folder and its checkpoints' folder (default: the run's folder)."""
    log_dir = Path(log_dir)
    return log_dir, Path(ckpt_dir) if ckpt_dir else log_dir


# ------------------------------------------------------------------------------ before the run
def preflight(resume: str, log_dir, ckpt_dir, config: dict, may_change) -> dict | None:
    """Before anything is written: a fresh run refuses a folder that holds a run; ``resume`` (a
    checkpoint path, '' for a fresh run) is loaded safely and refused when ``config`` differs from
    the checkpoint's (except run plumbing, ``may_change``). Returns the checkpoint (None: fresh)."""
    log_dir, ckpt_dir = run_dirs(log_dir, ckpt_dir)
    own = ckpt_dir / "checkpoint.pth.tar"
    ckpt = None
    if resume:
        ckpt = load_checkpoint(resume)
        if ckpt.get("format") != FORMAT:
            raise CheckpointError(f"{resume} is not a checkpoint of this reproduction (an original 3C "
                                  "model_best.pth holds weights only; evaluate it with examples/test.py)")
        if isinstance(ckpt.get("args"), dict):
            check_resume(ckpt["args"], config, may_change)
        if own.exists() and own.samefile(resume):
            return ckpt   # continuing the run of this folder
    for folder in dict.fromkeys((log_dir, ckpt_dir)):
        check_fresh_folder(folder, f"--resume {own}", "another --log-dir")
    return ckpt


def start_run(log_dir, ckpt_dir, *, seed: int, device: str, num_threads: int | None, notes: str,
              settings: dict, config: dict, batch_size: int, num_instances: int,
              bn_slices: int) -> tuple[torch.device, int, int]:
    """Set-up: the folders, torch threads, deterministic cuDNN, every seed, the device, torchrun's
    process group; logs the settings, removes the temporary files of interrupted writes and writes
    config.yaml (rank 0). Returns (device, rank, world size)."""
    log_dir, ckpt_dir = Path(log_dir), Path(ckpt_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if num_threads:
        torch.set_num_threads(num_threads)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    seed_everything(seed)
    device = pick_device(device)
    rank, world = du.init_from_env(device.type)
    if du.is_dist() and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())   # LOCAL_RANK
    if notes:
        log.info(notes)
    log.info(f"==========\nArgs: {json.dumps(settings, indent=1, default=str)}\n==========")
    if num_instances > 0 and batch_size % num_instances:
        log.warning(f"WARNING: --batch-size {batch_size} is not a multiple of --num-instances "
                    f"{num_instances}")
    if rank == 0:
        for folder in sorted({log_dir, ckpt_dir}):
            for gone in remove_stale_tmp(folder):
                log.info(f"==> removed {gone}, the temporary file of a write that was interrupted")
        text = yaml.safe_dump(config, sort_keys=True)
        atomic_write(log_dir / "config.yaml", lambda f: f.write(text.encode()))
    if du.is_dist():
        log.info(f"==> torchrun: {world} process(es) ({device.type}), {batch_size // world} images and "
                 f"{bn_slices // world} BN slice(s) per process")
    return device, rank, world


# ------------------------------------------------------------------------------ fresh or resumed
@dataclass
class RunState:
    """What a run carries from epoch to epoch besides the model, optimizer and scheduler."""
    start_epoch: int = 0
    best: dict | None = None        # best-on-test over the scheduled evaluations (what 3C reports)
    best_epoch: int = -1
    last: dict | None = None        # the last evaluation
    initial: dict | None = None     # the starting model, before any training
    history: list = field(default_factory=list)
    elapsed: float = 0.0            # seconds of the earlier parts of a resumed run
    started: float = 0.0            # time.perf_counter() at this process's start
    labels: np.ndarray | None = None
    memory: torch.nn.Module | None = None
    rng: dict | None = None         # a resumed run's RNG states, restored by restore_rng()

    def wall(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def restore_rng(self) -> None:
        if self.rng is not None:
            set_rng_state(self.rng)

    def evaluated(self, metrics: dict, epoch: int, scheduled: bool) -> bool:
        """Best/last bookkeeping of an evaluation; True when it is the new best."""
        self.last = metrics
        if scheduled and (self.best is None or metrics["mAP"] > self.best["mAP"]):
            self.best, self.best_epoch = metrics, epoch
            return True
        return False


def resume_or_load(ckpt: dict | None, resume: str, model, optimizer, scheduler, device, *,
                   temp: float, momentum: float, started: float) -> RunState:
    """The one place that decides: ``ckpt`` None starts a fresh run (epoch 0, nothing evaluated);
    else the run continues where ``ckpt`` (``resume``'s, from ``preflight``) stopped: weights,
    optimizer, scheduler, memory, pseudo-labels, best/last, history and elapsed time are restored
    here, the RNG states by ``RunState.restore_rng`` once everything before the loop is built."""
    if ckpt is None:
        return RunState(started=started)
    load_model_state(model, ckpt["model"], resume)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    mem = ckpt["memory"]
    memory = create_memory(mem["mode"], model.num_features, int(mem["num_clusters"]), temp=temp,
                           momentum=momentum).to(device)
    memory.load_state_dict(mem["state"])
    state = RunState(start_epoch=ckpt["epoch"], best=ckpt["best"], best_epoch=ckpt["best_epoch"],
                     last=ckpt["last"], initial=ckpt["initial"], history=list(ckpt["history"]),
                     elapsed=float(ckpt["elapsed"]), started=started,
                     labels=ckpt["pseudo_labels"].numpy(), memory=memory, rng=ckpt["rng"])
    log.info(f"==> resumed from {resume}: {state.start_epoch} epoch(s) done, best mAP "
             f"{state.best['mAP'] if state.best else float('nan'):.1f} (epoch {state.best_epoch})")
    return state


# ------------------------------------------------------------------------------ torchrun
def sync_epoch_rng(world: int, rank: int, augment_seed: int) -> None:
    """Rank 0's RNG states on every rank; ranks > 0 then augment their slices differently."""
    if world > 1:
        du.sync_rng(get_rng_state, set_rng_state)
        if rank != 0:   # rank 0 keeps its stream
            torch.manual_seed(augment_seed + rank)


def cluster_on_rank0(fn, world: int, rank: int, *args):
    """``fn(*args)`` in a single process; under torchrun rank 0 computes it and its result (or its
    error, raised on every rank) goes to every rank."""
    if world == 1:
        return fn(*args)
    result = None
    if rank == 0:
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
            result = exc
    result = du.broadcast_object(result)
    if isinstance(result, Exception):
        raise result
    return result


def wrap_distributed(model, device, world: int):
    """(the module the training forward goes through, the gather of the global batch): the model
    and None in a single process, DistributedDataParallel and an all-gather under torchrun (one
    process included: ``reproduce.sh --torchrun --nproc 1`` exercises DDP and its collectives)."""
    if not du.is_dist():
        return model, None
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    return ddp, du.gather_with_grad


# ------------------------------------------------------------------------------ after each epoch
PHASES = ("extract", "cluster", "train", "evaluate")


def gpu_peak_mb(device) -> float | None:
    """The most GPU memory this process has allocated so far, in MiB (None on a CPU)."""
    if torch.device(device).type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def epoch_costs(device, seconds: dict, train_images: int, extract_images: int) -> dict:
    """The cost keys of a history entry, the same in the five methods of the monorepo:
    ``seconds`` per phase (``PHASES``; 0.0 for one that did not run): extract = the training set's
    features for clustering, cluster = Jaccard + DBSCAN / HDC / k-means and the memory and loader
    built from the labels, train = the epoch's iterations, evaluate = the test set's extraction and
    ranking (+ re-ranking); ``images`` through the network: train = the training forward's
    (iterations x global batch), extract = for clustering; ``gpu_peak_mb`` (``gpu_peak_mb()``)."""
    return {"seconds": {k: round(float(seconds.get(k, 0.0)), 3) for k in PHASES},
            "images": {"train": int(train_images), "extract": int(extract_images)},
            "gpu_peak_mb": gpu_peak_mb(device)}


def log_epoch(writer, record: dict) -> None:
    """The epoch's TensorBoard scalars (``record``: the epoch's history entry). The tags shared by
    the five methods: eval/mAP, eval/rank1 (percent), train/loss and the loss terms (per iteration,
    ccc/trainer.py), train/lr, cluster/clusters, cluster/outliers, time/epoch, time/<phase> (extract,
    cluster, train, evaluate); 3C's own extra: cluster/hdc_iterations."""
    epoch = record["epoch"]
    if "mAP" in record:
        writer.add_scalar("eval/mAP", record["mAP"], epoch + 1)
        writer.add_scalar("eval/rank1", record["rank1"], epoch + 1)
    writer.add_scalar("cluster/clusters", record["clusters"], epoch)
    writer.add_scalar("cluster/outliers", record["outliers"], epoch)
    if "hdc_iterations" in record:
        writer.add_scalar("cluster/hdc_iterations", record["hdc_iterations"], epoch)
    writer.add_scalar("train/lr", record["lr"], epoch)
    for phase, seconds in record["seconds"].items():
        writer.add_scalar(f"time/{phase}", seconds, epoch)
    # the tag every method of the monorepo writes: the seconds of the whole epoch (evaluation included)
    writer.add_scalar("time/epoch", sum(record["seconds"].values()), epoch)
    writer.flush()


def save_epoch(ckpt_dir, epoch: int, state: RunState, model, optimizer, scheduler, memory, labels,
               config: dict, *, is_best: bool, snapshot: bool) -> None:
    """checkpoint.pth.tar: everything that determines the future (weights, optimizer, scheduler,
    memory, pseudo-labels, RNG states, best/last, history, elapsed time, settings); the model and
    its metrics in model_best.pth.tar (``is_best``) and model_e{epoch + 1}.pth.tar (``snapshot``).
    Every one carries ``config``, the resolved configuration (what --print-config prints), so
    test.py, extract.py and export.py need only the checkpoint (``args``: the same, kept for the
    checkpoints written before ``config`` existed)."""
    ckpt_dir = Path(ckpt_dir)
    ckpt = {"format": FORMAT, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "best": state.best,
            "best_epoch": state.best_epoch, "last": state.last, "initial": state.initial,
            "history": state.history,
            "memory": {"mode": memory.name, "num_clusters": memory.num_clusters,
                       "state": memory.state_dict()},
            "pseudo_labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)), "rng": get_rng_state(),
            "elapsed": state.wall(), "args": config, "config": config}
    save_checkpoint(ckpt, ckpt_dir / "checkpoint.pth.tar")
    model_only = {"format": FORMAT, "epoch": epoch + 1, "model": model.state_dict(), "metrics": state.last,
                  "args": config, "config": config}
    if is_best:
        save_checkpoint(model_only, ckpt_dir / "model_best.pth.tar")
    if snapshot:
        save_checkpoint(model_only, ckpt_dir / f"model_e{epoch + 1}.pth.tar")


def write_final_results(log_dir, state: RunState, *, num_epochs: int, native_ap: str, native_note: str,
                        **record) -> None:
    """results.json (best-on-test when a scheduled evaluation happened, else the last) and the
    closing line; ``record``: method, variant, target, scale, command, config."""
    if state.last is None:
        raise CheckpointError(f"nothing to report: the run has no evaluated epoch "
                              f"(--num-epochs {num_epochs})")
    wall = state.wall()
    best, last, initial = state.best, state.last, state.initial
    selection, reported = ("best-on-test", best) if best is not None else ("last", last)
    write_results(log_dir, common=reported, native=dict(reported, ap=native_ap), initial=initial,
                  epochs=num_epochs, wall_seconds=wall, selection=selection, last=last,
                  best_epoch=state.best_epoch, history=state.history, native_note=native_note, **record)
    best_txt = (f"best epoch {state.best_epoch}: mAP {best['mAP']:.1f} rank-1 {best['rank1']:.1f}; "
                if best else "")
    log.info(f"==> {best_txt}last epoch mAP {last['mAP']:.1f} rank-1 {last['rank1']:.1f} (initial mAP "
             f"{initial['mAP']:.1f}); wall {wall:.1f} s; results in {Path(log_dir) / 'results.json'}")


# ------------------------------------------------------------------------------ main()
def guarded_main(preflight_fn, run_fn, *, log_dir, append: bool, dataset: str, root_dir: str) -> int:
    """main()'s error handling: ``preflight_fn()`` (nothing written yet), then ``run_fn(ckpt)``
    inside log.txt (rank 0); a 3C error, a dataset that cannot be evaluated and a full disk each
    end in one 'error: ...' line and exit 2."""
    try:
        ckpt = preflight_fn()   # nothing written yet
    except CCCError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    main_rank = int(os.environ.get("RANK", "0")) == 0   # torchrun: rank 0 alone writes log.txt
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        with run_logging(log_dir, append=append) if main_rank else contextlib.nullcontext():
            try:
                return run_fn(ckpt)
            except CCCError as exc:
                report_error(f"error: {short_message(exc)}")
                return 2
            except EvaluationError as exc:
                report_error(f"error: cannot evaluate on {dataset} ({exc}); check the query/ and "
                             f"gallery folders under --root-dir {root_dir}")
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
