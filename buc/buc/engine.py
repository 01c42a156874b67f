"""The run plumbing around BUC's step loop (``examples/train.py``), one function each.

The same in every run: the one-line error handling of ``main``, the decision fresh run vs resume
(``resume_or_load``, after fast-reid's ``DefaultTrainer.resume_or_load``), the run folder (log.txt,
stale temporary files), the process set-up (threads, device, torchrun, seed), the dataset made on
rank 0 first, the checks of the schedule and of the process count, the run state saved into
``checkpoint.pth.tar``, the best/last bookkeeping (``model_best.pth.tar``) and ``results.json``.
Plain arguments only: argparse and YAML stay in ``examples/``.

torchrun: rank 0 evaluates, merges, logs and writes every file; the other ranks print nothing.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common_eval import EvaluationError

from . import datasets
from .datasets import DatasetNotFoundError, MalformedDatasetError
from .evaluators import COMMON_AP, NATIVE_AP
from .merge import MergeError, check_merge
from .models import PretrainedWeightsMissing
from .trainers import NaNLossError
from .utils import distributed as du
from .utils import rng_state, set_rng_state, set_seed
from .utils.data import CorruptImageError
from .utils.logging import Logger
from .utils.runfiles import BUCError, check_fresh_folder, check_resume, disk_full_line, remove_stale_tmp
from .utils.serialization import load_checkpoint, plain, save_checkpoint, write_json
from .utils.tensorboard import summary_writer


class ConfigError(ValueError):
    """Flags that cannot work together (e.g. with the number of torchrun processes)."""


USER_ERRORS = (DatasetNotFoundError, MalformedDatasetError, PretrainedWeightsMissing, CorruptImageError,
               NaNLossError, MergeError, ConfigError, BUCError, EvaluationError)
SHORT = {"market1501": "market", "duke": "duke", "mars": "mars", "DukeMTMC-VideoReID": "dukevideo"}


def report_errors(fn, *args) -> int:
    """fn(*args); bad input (and a full disk) before the run folder is set up: one line on stderr, 2."""
    try:
        return fn(*args)
    except USER_ERRORS as exc:   # before the log exists: the one line on stderr
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


def resume_or_load(logs_dir: Path, resume, config: dict, resolve, plumbing) -> dict | None:
    """The one place that decides fresh run vs resume, before anything is written.

    resume: None (fresh run), "auto" (LOGS_DIR/checkpoint.pth.tar) or a checkpoint path. Returns
    the checkpoint (None for a fresh run). A resume refuses a command whose resolved settings
    (``resolve(config)``) differ from the checkpoint's outside ``plumbing``; a run never writes
    into a folder that holds another run: a fresh run, or a resume of a checkpoint from
    elsewhere, needs a folder of its own."""
    ckpt_path = logs_dir / "checkpoint.pth.tar"
    checkpoint = None
    source = ckpt_path if resume == "auto" else resume
    if resume:
        checkpoint = load_checkpoint(source)
        if "args" in checkpoint:     # a checkpoint without its settings takes this command's
            check_resume(resolve(checkpoint["args"]), resolve(config), plumbing)
    if not (resume and ckpt_path.exists() and ckpt_path.samefile(source)):
        check_fresh_folder(logs_dir, f"--resume {ckpt_path}", "another --logs_dir")
    return checkpoint


def in_run_folder(logs_dir: Path, append: bool, fn, *args) -> int:
    """fn(*args) with everything printed teed to LOGS_DIR/log.txt (appended on resume; rank 0
    only, the other ranks print nothing), after removing the temporary files of interrupted
    writes. Bad input or a full disk: one line on stderr and in log.txt, exit code 2."""
    main_rank = int(os.environ.get("RANK", "0")) == 0   # torchrun: only rank 0 prints and writes
    logs_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if main_rank:
            log = stack.enter_context(Logger(logs_dir / "log.txt", append=append))
            for gone in remove_stale_tmp(logs_dir):
                print(f"=> removed {gone.name}, the temporary file of an interrupted write")
        else:
            log = Logger(None)
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        try:
            return fn(*args)
        except (*USER_ERRORS, OSError) as exc:  # bad input: a clear message (console and log.txt)
            line = f"error: {exc}" if isinstance(exc, USER_ERRORS) else disk_full_line(exc)
            if line is None:
                raise
            if log.file is not None:
                with contextlib.suppress(OSError):
                    log.file.write(line + "\n")
            print(line, file=sys.stderr)
            return 2
        finally:
            du.cleanup()


def command_line(argv=None) -> str:
    """The command of this run, as a shell line (argv: main()'s arguments, None = sys.argv)."""
    return shlex.join([sys.executable, *(sys.argv if argv is None else [sys.argv[0], *argv])])


def set_up(config: dict, logs_dir: Path, *, seed: int, threads, device: str) -> tuple[str, int, int]:
    """Writes args.json (rank 0), sets the threads, joins the torchrun group if any and seeds
    python/numpy/torch. Returns (device, rank, world size)."""
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(config, logs_dir / "args.json")
    if threads:
        torch.set_num_threads(threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    rank, world = du.init_from_env(torch.device(device).type)
    if du.is_dist() and torch.device(device).type == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"   # LOCAL_RANK
    torch.backends.cudnn.benchmark = True
    set_seed(seed)
    return device, rank, world


def gpu_peak_mb(device) -> float | None:
    """The most GPU memory this process has allocated since it started, in MiB (None on a CPU)."""
    if torch.device(device).type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def load_dataset(name: str, data_dir: str, *, converted_dir, link: str, reconvert: bool, progress: bool,
                 main_rank: bool):
    """The dataset; under torchrun rank 0 converts first (one writer), its error reaches every rank."""
    made = {}

    def make_dataset():
        made["dataset"] = datasets.create(name, data_dir, converted_dir=converted_dir, link=link,
                                          reconvert=reconvert and main_rank, progress=progress and main_rank)

    du.run_on_rank0(make_dataset)
    if "dataset" not in made:
        make_dataset()
    return made["dataset"]


def check_world(batch_size: int, bn_slices: int, world: int) -> None:
    """A torchrun run splits the global batch and the ghost BN slices evenly over the processes."""
    if world == 1:
        return
    if batch_size % world:
        raise ConfigError(f"--batch-size {batch_size} is not divisible by the {world} processes (the "
                          f"global batch is split evenly); use a multiple of {world}")
    if bn_slices % world:
        raise ConfigError(f"--bn-slices {bn_slices} is not a multiple of the {world} processes (each "
                          f"normalises bn_slices / {world} slices of its part); pass --bn-slices {world} "
                          f"or another multiple of {world}")


def check_schedule(num_samples: int, nums_to_merge: int, num_steps: int, merge_percent: float) -> None:
    """Stops before training when the merge schedule cannot work."""
    if not 0 < merge_percent < 1:
        raise MergeError(f"--merge_percent must be in (0, 1), got {merge_percent}: at 1 or more every "
                         "sample would be merged into one cluster")
    if num_steps < 1:
        raise MergeError(f"--merge_percent {merge_percent} gives {num_steps} steps (int(1/mp) - 1): "
                         "nothing would be trained; use a value below 0.5")
    clusters = num_samples
    for step in range(num_steps - 1):           # the merge after the last step is not needed
        try:
            check_merge(clusters, nums_to_merge)
        except MergeError as exc:
            raise MergeError(f"the merge after step {step} of {num_steps}: {exc}") from None
        clusters -= nums_to_merge


def collapse_warning(clusters: int, true_ids: int, num_samples: int) -> str | None:
    """The loud line logged at every step whose pseudo-labels are one cluster, or whose training
    set holds one identity: the repelled loss then has nothing (or no one else) to repel."""
    if clusters == 1:
        return (f"WARNING: the pseudo-labels of this step are one cluster ({num_samples} samples): the "
                "repelled loss is 0 and this step learns nothing; use a smaller --merge_percent")
    if true_ids == 1:
        return (f"WARNING: the training set holds one identity ({num_samples} samples): every merge "
                "joins the same person and nothing separates people; check the dataset")
    return None


def purity(labels, true_pids) -> float:
    """Fraction of samples whose cluster's majority identity is their own."""
    correct = 0
    for c in np.unique(labels):
        members = true_pids[labels == c]
        correct += np.bincount(np.unique(members, return_inverse=True)[1]).max()
    return float(correct / len(labels))


def metrics_of(result) -> dict:
    """Both AP flavours of an evaluation: common (step-wise) and native (the original's)."""
    return {"common": result.metrics(COMMON_AP), "native": result.metrics(NATIVE_AP)}


class NoWriter:
    """The TensorBoard writer of ranks other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


def open_writer(logs_dir: Path, main_rank: bool):
    """TensorBoard events in LOGS_DIR (rank 0; the other ranks write nothing)."""
    return summary_writer(str(logs_dir)) if main_rank else NoWriter()


def restore_state(bu, checkpoint: dict | None, num_samples: int, rank: int) -> dict:
    """The run state: a fresh run's (every sample its own cluster, step 0), or the checkpoint's
    (weights, memory, labels, optimizer, history, best, RNG states). Ranks > 0 then draw their own
    augmentation and dropout (rank 0's are the single process's)."""
    state = {"step": 0, "epoch": 0, "labels": np.arange(num_samples), "history": [], "best": None,
             "initial": None, "wall_seconds": 0.0, "optimizer": None}
    if checkpoint is not None:
        if len(checkpoint["labels"]) != num_samples:
            raise MalformedDatasetError(f"the checkpoint has {len(checkpoint['labels'])} samples, the "
                                        f"dataset {num_samples}: it belongs to another dataset or "
                                        "configuration")
        bu.load_state_dict(checkpoint)
        state.update({k: checkpoint[k] for k in state if k in checkpoint})
        state["labels"] = np.asarray(state["labels"]).astype(np.int64)   # stored as a tensor
        set_rng_state(checkpoint["rng"])
        print(f"=> resumed from step {state['step']}, epoch {state['epoch']} "
              f"({state['labels'].max() + 1} clusters)")
    if rank > 0:
        set_seed(int(torch.randint(2**31, ())) + rank)
    return state


def save_state(path: Path, bu, state: dict, config: dict, t_start: float, step: int, epoch: int,
               optimizer=None, *, main_rank: bool = True, resolved: dict | None = None) -> None:
    """checkpoint.pth.tar (rank 0): everything that determines the future, at (step, epoch).
    Every rank moves its state on (a run resumed inside a step starts the next step at epoch 0
    with a fresh optimizer on all ranks alike); rank 0 alone writes. ``args`` = the command's
    flags (what --resume compares), ``config`` = the resolved configuration (what test.py,
    extract.py and export.py read: the checkpoint alone describes its model)."""
    state.update(step=step, epoch=epoch, optimizer=optimizer.state_dict() if optimizer else None)
    if not main_rank:
        return
    ckpt = {**bu.state_dict(), **state, "rng": rng_state(), "args": config,
            "config": resolved if resolved is not None else config,
            "wall_seconds": state["wall_seconds"] + time.time() - t_start}
    save_checkpoint(plain(ckpt), path)   # tensors, numbers, strings: weights_only loads it


def record_step(state: dict, entry: dict, model, config: dict, best_path: Path, main_rank: bool,
                resolved: dict | None = None) -> None:
    """Appends a finished step to the history; a new best (by native mAP, rank 0; only steps
    that were evaluated, see --eval-every) is kept as the best entry and written to
    model_best.pth.tar with the resolved ``config``."""
    state["history"].append(entry)
    if main_rank and "native" in entry and (
            state["best"] is None or entry["native"]["mAP"] > state["best"]["native"]["mAP"]):
        state["best"] = entry
        save_checkpoint(plain({"model": model.state_dict(), "step": entry["step"], "metrics": entry,
                               "args": config, "config": resolved if resolved is not None else config}),
                        best_path)


def write_run_results(logs_dir: Path, state: dict, dataset, bu, *, dataset_name: str, scale: str,
                      num_steps: int, t_start: float, command: str, config: dict) -> None:
    """results.json: the best step (best-on-test, by native mAP), the last, the initial model."""
    from common_eval.results import write_results

    hist = state["history"]
    best, last = state["best"], hist[-1]
    epochs = sum(bu.epochs_for(s) for s in range(num_steps))
    wall = state["wall_seconds"] + time.time() - t_start
    path = write_results(
        logs_dir, method="buc", target=SHORT[datasets.get_class(dataset_name).name],
        scale=scale,
        common=best["common"], native=best["native"], initial=state["initial"]["common"],
        selection="best-on-test", last=last["common"], epochs=epochs, wall_seconds=wall,
        command=command, config=config,
        selected_step=best["step"], initial_native=state["initial"]["native"],
        last_native=last["native"], history=hist, dataset=dataset.statistics())
    print(f"initial mAP {state['initial']['common']['mAP']:.1f} -> best {best['common']['mAP']:.1f} "
          f"(step {best['step']}), last {last['common']['mAP']:.1f} (step-wise AP); "
          f"wall {wall:.0f} s; {path}")
