"""BUC training: ``python examples/train.py -d market1501 --size_penalty 0.003 -mp 0.05``.

The original's ``run.py`` flags and defaults (spec B10), plus the constants it hard-coded as flags
with the same values, plus this project's run infrastructure (seed, resume, pretrained weights,
smoke preset, learned metric, ghost BatchNorm, mixed precision, torchrun). The main loop below
reads top to bottom:

    for each step:  train on the current clusters -> evaluate -> merge (memory reset to zeros)

Presets: ``--config FILE`` loads a YAML file as argparse defaults; ``--smoke`` loads
``configs/smoke-image.yaml`` or ``configs/smoke-video.yaml`` (CPU, synthetic data). Flags given
on the command line always win.

Multi-GPU: ``torchrun --nproc_per_node=N examples/train.py ...`` (DistributedDataParallel; nccl
on CUDA, gloo on the CPU). Rank 0 evaluates, merges, logs and writes every file; a single
process (no torchrun) is the run it always was.
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
# made a ResNet-18 step 3-10x slower (measured); on a quiet machine the cost is negligible.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from buc import datasets, metric_learning, models  # noqa: E402
from buc.bottom_up import BottomUp  # noqa: E402
from buc.datasets import DatasetNotFoundError, MalformedDatasetError  # noqa: E402
from buc.dist_metric import DistanceMetric  # noqa: E402
from buc.evaluators import COMMON_AP, NATIVE_AP  # noqa: E402
from buc.merge import MergeError, check_merge  # noqa: E402
from buc.models import PretrainedWeightsMissing  # noqa: E402
from buc.trainers import NaNLossError  # noqa: E402
from buc.utils import distributed as du  # noqa: E402
from buc.utils import rng_state, set_rng_state, set_seed  # noqa: E402
from buc.utils.data import CorruptImageError  # noqa: E402
from buc.utils.logging import Logger  # noqa: E402
from buc.utils.runfiles import (  # noqa: E402
    BUCError,
    check_fresh_folder,
    check_resume,
    disk_full_line,
    finite_float,
    remove_stale_tmp,
)
from buc.utils.serialization import load_checkpoint, plain, save_checkpoint, write_json  # noqa: E402
from buc.utils.tensorboard import summary_writer  # noqa: E402
from common_eval import EvaluationError  # noqa: E402


class ConfigError(ValueError):
    """Flags that cannot work together (e.g. with the number of torchrun processes)."""


USER_ERRORS = (DatasetNotFoundError, MalformedDatasetError, PretrainedWeightsMissing, CorruptImageError,
               NaNLossError, MergeError, ConfigError, BUCError, EvaluationError)

# run plumbing: may differ between a checkpoint and the command that resumes it (everything else
# must be equal, or --resume stops and lists the differences)
PLUMBING = frozenset({"logs_dir", "data_dir", "resume", "workers", "threads", "device", "progress",
                      "print_freq", "converted_dir", "link", "reconvert", "cache_images", "config",
                      "print_config", "stop_after_epochs", "stop_after_steps"})

HERE = Path(__file__).resolve().parent
BUC_DIR = HERE.parent
REPO = BUC_DIR.parent
CONFIGS = BUC_DIR / "configs"
SHORT = {"market1501": "market", "duke": "duke", "mars": "mars", "DukeMTMC-VideoReID": "dukevideo"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="bottom-up clustering (BUC, AAAI 2019)")
    # ---- the original run.py flags, same names and defaults
    p.add_argument("-d", "--dataset", type=str, default="mars",
                   help=f"one of {', '.join(datasets.names())} (aliases: market, dukemtmcreid, dukevideo)")
    p.add_argument("-b", "--batch-size", "--batch_size", dest="batch_size", type=int, default=16)
    p.add_argument("-f", "--fea", type=int, default=2048, help="embedding size")
    p.add_argument("-a", "--arch", type=str, default="avg_pool", choices=models.names(),
                   help="avg_pool = the original (ResNet-50); resnetNN = the same model on ResNet-NN")
    p.add_argument("--data_dir", "--data-dir", "--data-root", dest="data_dir", type=str, default=None,
                   help="folder holding the official dataset folders (default $REID_DATA, else "
                        "<repo>/data; with --smoke <repo>/data/synthetic/a)")
    p.add_argument("--logs_dir", "--logs-dir", dest="logs_dir", type=str, default=str(BUC_DIR / "logs"))
    p.add_argument("--max_frames", type=int, default=900, help="frames per tracklet at evaluation, at most")
    p.add_argument("--loss", type=str, default="ExLoss", choices=["ExLoss"], help="the only loss")
    p.add_argument("-m", "--momentum", type=finite_float, default=0.5,
                   help="unused, as in the original (the memory update uses a fixed 1/2)")
    p.add_argument("-s", "--step_size", type=int, default=55,
                   help="unused, as in the original (the effective decay step is --lr_step_size 16)")
    p.add_argument("--size_penalty", type=finite_float, default=0.005,
                   help="lambda of the diversity term (run.sh: 0.003)")
    p.add_argument("-mp", "--merge_percent", type=finite_float, default=0.05,
                   help="fraction of the samples merged per step")
    # ---- constants the original hard-coded (defaults = its values)
    g = p.add_argument_group("constants of the original (Bottom_up)")
    g.add_argument("--steps", type=int, default=None, help="merge steps (default int(1/mp) - 1)")
    g.add_argument("--initial_steps", type=int, default=20, help="epochs of step 0")
    g.add_argument("--later_steps", type=int, default=None, help="epochs of later steps (2 image, 5 video)")
    g.add_argument("--lr", type=finite_float, default=0.1, help="step-0 learning rate (backbone x 0.1)")
    g.add_argument("--later_lr", type=finite_float, default=0.01, help="learning rate of later steps")
    g.add_argument("--lr_step_size", type=int, default=16, help="step 0: lr / 10 from this epoch on")
    g.add_argument("--height", type=int, default=256)
    g.add_argument("--width", type=int, default=128)
    g.add_argument("--frames_per_video", type=int, default=None,
                   help="training frames per sample (1 image, 16 video)")
    g.add_argument("--eval_batch_size", type=int, default=None, help="64 image, 1 tracklet video")
    g.add_argument("-j", "--workers", type=int, default=6)
    g.add_argument("--cache_images", action="store_true",
                   help="keep decoded images in RAM for the whole run (useful with --workers 0)")
    g.add_argument("--dropout", type=finite_float, default=0.5)
    g.add_argument("--t", type=finite_float, default=10.0, help="ExLoss scale (1 / temperature)")
    g.add_argument("--fixed_layer", choices=["auto", "yes", "no"], default="auto",
                   help="freeze conv1-layer2 and their BNs (auto: video datasets)")
    # ---- run infrastructure
    r = p.add_argument_group("run")
    r.add_argument("--config", type=str, default=None, help="YAML file of flag defaults")
    r.add_argument("--smoke", action="store_true", help="CPU preset on the synthetic benchmark")
    r.add_argument("--seed", type=int, default=0, help="seeds python/numpy/torch (the original set none)")
    r.add_argument("--pretrained", type=str, default="imagenet",
                   help="imagenet (torchvision IMAGENET1K_V1 via the torch cache), none, or a "
                        "state_dict PATH")
    r.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from LOGS_DIR/checkpoint.pth.tar (or the given checkpoint); the "
                        "command's settings must be the checkpoint's (run plumbing aside)")
    r.add_argument("--print-config", "--print_config", dest="print_config", action="store_true",
                   help="print the resolved configuration as YAML and exit (touches no data or logs)")
    r.add_argument("--metric", type=str, default="euclidean", choices=metric_learning.names(),
                   help="learned metric for evaluation, fitted on train features with the pseudo-labels")
    r.add_argument("--cmc_configs", choices=["market1501", "all"], default="market1501",
                   help="market1501 (what BUC prints) or all of Open-ReID's (allshots, cuhk03, market1501)")
    r.add_argument("--device", type=str, default="auto", help="auto, cpu, cuda, cuda:1 ...")
    r.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    r.add_argument("--converted_dir", type=str, default=None,
                   help="converted copy of the dataset (default ${XDG_CACHE_HOME:-~/.cache}/buc/"
                        "converted/<name>-<key of the source folder>)")
    r.add_argument("--link", choices=["hard", "symlink", "copy"], default="hard",
                   help="how the converter places frames")
    r.add_argument("--reconvert", action="store_true", help="rebuild the converted copy")
    r.add_argument("--print_freq", type=int, default=None)
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bars")
    r.add_argument("--bn-slices", "--bn_slices", dest="bn_slices", type=int, default=None,
                   help="BatchNorm statistics per slice of the batch, as nn.DataParallel on that many "
                        "GPUs (ghost BN; default: the authors' GPU count, 1 for images, 2 for video)")
    r.add_argument("--amp", choices=["off", "bf16", "fp16"], default="off",
                   help="mixed precision for the training forward (fp16: with a GradScaler on CUDA)")
    r.add_argument("--channels-last", "--channels_last", dest="channels_last", action="store_true",
                   help="channels_last memory format (GPU speed; off = the original)")
    r.add_argument("--stop_after_epochs", type=int, default=None,
                   help="stop (as if interrupted) after this many epochs in this process; for resume tests")
    r.add_argument("--stop_after_steps", type=int, default=None,
                   help="stop after this many completed steps in this process; for resume tests")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    p = build_parser()
    args, _ = p.parse_known_args(argv)
    defaults = {}
    if args.smoke:
        video = datasets.get_class(args.dataset).is_video if args.dataset else False
        preset = CONFIGS / ("smoke-video.yaml" if video else "smoke-image.yaml")
        defaults.update(yaml.safe_load(preset.read_text()))
    if args.config:
        defaults.update(yaml.safe_load(Path(args.config).read_text()) or {})
    unknown = sorted(set(defaults) - {a.dest for a in p._actions})
    if unknown:
        p.error(f"unknown keys in the preset: {', '.join(unknown)}")
    bad = sorted(k for k, v in defaults.items() if isinstance(v, float) and not math.isfinite(v))
    if bad:
        p.error(f"the preset sets {', '.join(f'{k}: {defaults[k]}' for k in bad)}: not a finite number")
    p.set_defaults(**defaults)
    args = p.parse_args(argv)
    try:
        datasets.get_class(args.dataset)
    except KeyError as exc:
        p.error(str(exc.args[0]))
    if args.bn_slices is not None and args.bn_slices < 1:
        p.error(f"--bn-slices must be at least 1, got {args.bn_slices}")
    if args.data_dir is None:
        args.data_dir = str(REPO / "data" / "synthetic" / "a") if args.smoke \
            else os.environ.get("REID_DATA", str(REPO / "data"))
    return args


def metrics_of(result) -> dict:
    return {"common": result.metrics(COMMON_AP), "native": result.metrics(NATIVE_AP)}


def resolved_config(config: dict, world: int | None = None) -> dict:
    """The configuration a run actually uses: the dataset's canonical name and the values that the
    flags leave to the dataset (None / auto) filled in. --print-config prints it; --resume compares
    the checkpoint's and the command's through it."""
    c = dict(config)
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else world
    try:
        cls = datasets.get_class(c.get("dataset"))
    except KeyError:
        return c
    video = cls.is_video
    c["dataset"] = cls.name
    fill = {"later_steps": 5 if video else 2, "frames_per_video": 16 if video else 1,
            "eval_batch_size": 1 if video else 64}
    for key, value in fill.items():
        if c.get(key) is None:
            c[key] = value
    if c.get("steps") is None and c.get("merge_percent"):
        c["steps"] = int(1 / c["merge_percent"]) - 1
    if c.get("fixed_layer", "auto") == "auto":
        c["fixed_layer"] = "yes" if video else "no"
    if c.get("bn_slices") is None:   # the authors' GPUs under nn.DataParallel: 1 images, 2 video
        c["bn_slices"] = max(2 if video else 1, world) if world > 1 else (2 if video else 1)
    return c


def print_config(args) -> None:
    config = resolved_config(vars(args))
    config.pop("print_config", None)
    if config.get("converted_dir") is None:   # where the converted copy is (or will be) kept
        from buc.datasets.base import default_converted_dir
        cls = datasets.get_class(config["dataset"])
        config["converted_dir"] = str(default_converted_dir(cls.name, Path(config["data_dir"]) / cls.folder))
    print(yaml.safe_dump(config, sort_keys=True, default_flow_style=False), end="")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_config:
        print_config(args)
        return 0
    try:
        return _main(args, argv)
    except USER_ERRORS as exc:   # before the log exists: the one line on stderr
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


def _main(args, argv) -> int:
    logs_dir = Path(args.logs_dir)
    ckpt_path = logs_dir / "checkpoint.pth.tar"
    if args.bn_slices is None:   # resolved before anything is compared or written
        args.bn_slices = resolved_config(vars(args))["bn_slices"]
    resume = None
    source = ckpt_path if args.resume == "auto" else args.resume
    if args.resume:
        resume = load_checkpoint(source)
        if "args" in resume:     # a checkpoint without its settings takes this command's
            check_resume(resolved_config(resume["args"]), resolved_config(vars(args)), PLUMBING)
    # a run never writes into a folder that holds another run: a fresh run, or a resume of a
    # checkpoint from elsewhere, needs a folder of its own
    if not (args.resume and ckpt_path.exists() and ckpt_path.samefile(source)):
        check_fresh_folder(logs_dir, f"--resume {ckpt_path}", "another --logs_dir")
    main_rank = int(os.environ.get("RANK", "0")) == 0   # torchrun: only rank 0 prints and writes
    logs_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if main_rank:
            log = stack.enter_context(Logger(logs_dir / "log.txt", append=resume is not None))
            for gone in remove_stale_tmp(logs_dir):
                print(f"=> removed {gone.name}, the temporary file of an interrupted write")
        else:
            log = Logger(None)
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        try:
            return run(args, logs_dir, ckpt_path, resume, argv)
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


def run(args, logs_dir: Path, ckpt_path: Path, resume, argv) -> int:
    t_start = time.time()
    command = shlex.join([sys.executable, *(sys.argv if argv is None else [sys.argv[0], *argv])])
    print(f"==> {command}")
    if int(os.environ.get("RANK", "0")) == 0:
        write_json(vars(args), logs_dir / "args.json")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    rank, world = du.init_from_env(torch.device(device).type)
    main_rank = rank == 0
    if world > 1 and torch.device(device).type == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"   # LOCAL_RANK
    torch.backends.cudnn.benchmark = True
    set_seed(args.seed)

    # ---- data: every training sample (image or tracklet) starts as its own cluster
    made = {}

    def make_dataset():
        made["dataset"] = datasets.create(args.dataset, args.data_dir, converted_dir=args.converted_dir,
                                          link=args.link, reconvert=args.reconvert and main_rank,
                                          progress=args.progress and main_rank)

    du.run_on_rank0(make_dataset)   # rank 0 converts first (one writer); its error reaches every rank
    if "dataset" not in made:
        make_dataset()
    dataset = made["dataset"]
    num_samples = len(dataset.train)
    nums_to_merge = int(num_samples * args.merge_percent)
    num_steps = args.steps if args.steps is not None else int(1 / args.merge_percent) - 1
    check_schedule(num_samples, nums_to_merge, num_steps, args.merge_percent)
    fixed_layer = dataset.is_video if args.fixed_layer == "auto" else args.fixed_layer == "yes"
    check_world(args, world)

    # ---- model, memory, trainer
    model = models.create(args.arch, pretrained=args.pretrained, dropout=args.dropout,
                          embedding_size=args.fea, fixed_layer=fixed_layer)
    bu = BottomUp(model, [r[0] for r in dataset.train], dataset.images_dir, is_video=dataset.is_video,
                  batch_size=args.batch_size, height=args.height, width=args.width, workers=args.workers,
                  embedding_size=args.fea, frames_per_video=args.frames_per_video,
                  max_frames=args.max_frames, eval_batch_size=args.eval_batch_size,
                  initial_epochs=args.initial_steps, later_epochs=args.later_steps, lr=args.lr,
                  later_lr=args.later_lr, lr_step_size=args.lr_step_size, t=args.t, device=device,
                  origin_of=dataset.origin_of, progress=args.progress and main_rank,
                  print_freq=args.print_freq, bn_slices=args.bn_slices, amp=args.amp,
                  channels_last=args.channels_last, cache_images=args.cache_images)
    metric = DistanceMetric(args.metric) if args.metric != "euclidean" else None
    cmc_configs = ("allshots", "cuhk03", "market1501") if args.cmc_configs == "all" else ("market1501",)
    true_pids = np.array([r[1] for r in dataset.train])   # diagnostics only (merge purity)
    print(f"samples {num_samples}, steps {num_steps}, merges per step {nums_to_merge}, "
          f"device {device}, fixed layers {fixed_layer}, BN slices {args.bn_slices}"
          + (f", {world} processes" if world > 1 else ""))

    writer = summary_writer(str(logs_dir)) if main_rank else NoWriter()
    state = {"step": 0, "epoch": 0, "labels": np.arange(num_samples), "history": [], "best": None,
             "initial": None, "wall_seconds": 0.0, "optimizer": None}
    if resume is not None:
        if len(resume["labels"]) != num_samples:
            raise MalformedDatasetError(f"the checkpoint has {len(resume['labels'])} samples, the dataset "
                                        f"{num_samples}: it belongs to another dataset or configuration")
        bu.load_state_dict(resume)
        state.update({k: resume[k] for k in state if k in resume})
        state["labels"] = np.asarray(state["labels"]).astype(np.int64)   # stored as a tensor
        set_rng_state(resume["rng"])
        print(f"=> resumed from step {state['step']}, epoch {state['epoch']} "
              f"({state['labels'].max() + 1} clusters)")
    if rank > 0:   # its own augmentation and dropout draws (rank 0's are the single process's)
        set_seed(int(torch.randint(2**31, ())) + rank)

    def save(step, epoch, optimizer=None):
        if not main_rank:
            return
        state.update(step=step, epoch=epoch, optimizer=optimizer.state_dict() if optimizer else None)
        ckpt = {**bu.state_dict(), **state, "rng": rng_state(), "args": vars(args),
                "wall_seconds": state["wall_seconds"] + time.time() - t_start}
        save_checkpoint(plain(ckpt), ckpt_path)   # tensors, numbers, strings: weights_only loads it

    # ---- the starting model, evaluated as every step will be
    if state["initial"] is None and main_rank:
        print("initial model (before step 0):")
        state["initial"] = metrics_of(bu.evaluate(dataset.query, dataset.gallery, cmc_configs=cmc_configs,
                                                  seed=args.seed))
        writer.add_scalar("test/mAP", state["initial"]["native"]["mAP"], 0)
        save(0, 0)

    epochs_run, steps_run = 0, 0
    for step in range(state["step"], num_steps):
        labels = state["labels"]
        clusters = int(labels.max()) + 1
        print(f"step:  {step}  ({clusters} clusters)")
        warning = collapse_warning(clusters, len(np.unique(true_pids)), num_samples)
        if warning:
            print(warning)
        writer.add_scalar("train/clusters", clusters, step)

        # train on the current clusters (resumes inside the step from the saved epoch)
        def on_epoch_end(s, epoch, optimizer, stats):
            writer.add_scalar("train/lr", stats["lr"], bu._global_iter(s, epoch + 1, stats["iterations"]))
            save(s, epoch + 1, optimizer)

        budget = None if args.stop_after_epochs is None else args.stop_after_epochs - epochs_run
        epochs_run += bu.train(labels, step, start_epoch=state["epoch"], optimizer_state=state["optimizer"],
                               on_epoch_end=on_epoch_end, writer=writer, stop_after_epochs=budget)
        if args.stop_after_epochs is not None and epochs_run >= args.stop_after_epochs:
            print(f"stopping after {epochs_run} epochs as asked (--stop_after_epochs); "
                  f"continue with --resume")
            writer.close()
            return 0

        # evaluate on query / gallery, as the original does after every step (rank 0)
        entry = {"step": step, "clusters": clusters}
        if main_rank:
            result = bu.evaluate(dataset.query, dataset.gallery, metric=metric, labels=labels,
                                 cmc_configs=cmc_configs, seed=args.seed)
            entry.update(metrics_of(result))
            writer.add_scalar("test/mAP", entry["native"]["mAP"], step + 1)
            writer.add_scalar("test/mAP_stepwise", entry["common"]["mAP"], step + 1)
            writer.add_scalar("test/rank1", entry["native"]["rank1"], step + 1)

        # merge the closest clusters; the memory restarts at zeros
        if step + 1 < num_steps:
            print("-" * 40 + " bottom-up clustering " + "-" * 40)
            merged = bu.get_new_train_data(labels, nums_to_merge, args.size_penalty)
            state["labels"] = merged.labels
            entry["merge_purity"] = purity(merged.labels, true_pids)
            entry["correct_merges"] = int(sum(true_pids[i] == true_pids[j] for i, j in merged.pairs))
            print(f"merge purity (diagnostic, true identities): {entry['merge_purity']:.3f}, "
                  f"same-identity merges {entry['correct_merges']}/{len(merged.pairs)}")
            writer.add_scalar("train/merge_purity", entry["merge_purity"], step + 1)
        state["history"].append(entry)
        if main_rank and (state["best"] is None
                          or entry["native"]["mAP"] > state["best"]["native"]["mAP"]):  # by native mAP
            state["best"] = entry
            save_checkpoint(plain({"model": bu.module.state_dict(), "step": step, "metrics": entry,
                                   "args": vars(args)}), logs_dir / "model_best.pth.tar")
        save(step + 1, 0)
        steps_run += 1
        print("\n")
        if args.stop_after_steps is not None and steps_run >= args.stop_after_steps and step + 1 < num_steps:
            print(f"stopping after {steps_run} steps as asked (--stop_after_steps); continue with --resume")
            writer.close()
            return 0

    writer.close()
    if main_rank:
        write_run_results(args, logs_dir, state, dataset, bu, num_steps, t_start, command)
    return 0


class NoWriter:
    """The TensorBoard writer of ranks other than 0."""

    def add_scalar(self, *args, **kwargs):
        pass

    def close(self):
        pass


def check_world(args, world: int) -> None:
    """A torchrun run splits the global batch and the ghost BN slices evenly over the processes."""
    if world == 1:
        return
    if args.batch_size % world:
        raise ConfigError(f"--batch-size {args.batch_size} is not divisible by the {world} processes (the "
                          f"global batch is split evenly); use a multiple of {world}")
    if args.bn_slices % world:
        raise ConfigError(f"--bn-slices {args.bn_slices} is not a multiple of the {world} processes (each "
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


def write_run_results(args, logs_dir, state, dataset, bu, num_steps, t_start, command) -> None:
    from common_eval.results import write_results

    hist = state["history"]
    best, last = state["best"], hist[-1]
    epochs = sum(bu.epochs_for(s) for s in range(num_steps))
    wall = state["wall_seconds"] + time.time() - t_start
    path = write_results(
        logs_dir, method="buc", target=SHORT[datasets.get_class(args.dataset).name],
        scale="smoke" if args.smoke else "paper",
        common=best["common"], native=best["native"], initial=state["initial"]["common"],
        selection="best-on-test", last=last["common"], epochs=epochs, wall_seconds=wall,
        command=command, config=vars(args),
        selected_step=best["step"], initial_native=state["initial"]["native"],
        last_native=last["native"], history=hist, dataset=dataset.statistics())
    print(f"initial mAP {state['initial']['common']['mAP']:.1f} -> best {best['common']['mAP']:.1f} "
          f"(step {best['step']}), last {last['common']['mAP']:.1f} (step-wise AP); "
          f"wall {wall:.0f} s; {path}")


if __name__ == "__main__":
    sys.exit(main())
