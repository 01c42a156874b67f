"""BUC's command line: the original run.py flags and defaults, the constants it hard-coded (as
flags with the same values), this project's run flags, the YAML presets (``--config FILE``,
``--smoke``), ``--print-config`` and the configuration a run resolves to (``resolved_config``).

The package (``buc``) takes plain arguments only; argparse and YAML stay here.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import yaml

from buc import datasets, metric_learning, models
from buc.utils.runfiles import finite_float

# run plumbing: may differ between a checkpoint and the command that resumes it (everything else
# must be equal, or --resume stops and lists the differences)
PLUMBING = frozenset({"logs_dir", "data_dir", "resume", "workers", "threads", "device", "progress",
                      "print_freq", "converted_dir", "link", "reconvert", "cache_images", "config",
                      "print_config", "stop_after_epochs", "stop_after_steps"})

HERE = Path(__file__).resolve().parent
BUC_DIR = HERE.parent
REPO = BUC_DIR.parent
CONFIGS = BUC_DIR / "configs"


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
    r.add_argument("--scale", choices=("paper", "smoke", "rehearsal"), default=None,
                   help="recorded in results.json (default: smoke with --smoke, else paper; the adapter's "
                        "--rehearse sets rehearsal)")
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
    r.add_argument("--eval-every", "--eval_every", dest="eval_every", type=int, default=1,
                   help="evaluate on query/gallery after every N-th step and always after the last "
                        "(1 = the original: every step); the best model is chosen among the evaluated "
                        "steps; training is unchanged")
    r.add_argument("--max-iters", "--max_iters", dest="max_iters", type=int, default=None,
                   help="at most this many training iterations (batches) per epoch (default: all; "
                        "the adapter's --rehearse: 20)")
    r.add_argument("--run-steps", "--run_steps", dest="run_steps", type=int, default=None,
                   help="run only the first N steps of the schedule, each with its merge, then write "
                        "results.json (default: all; the adapter's --rehearse: 1)")
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
    if args.eval_every < 1:
        p.error(f"--eval-every must be at least 1, got {args.eval_every}")
    for flag, value in (("--bn-slices", args.bn_slices), ("--max-iters", args.max_iters),
                        ("--run-steps", args.run_steps)):
        if value is not None and value < 1:
            p.error(f"{flag} must be at least 1, got {value}")
    if args.data_dir is None:
        args.data_dir = str(REPO / "data" / "synthetic" / "a") if args.smoke \
            else os.environ.get("REID_DATA", str(REPO / "data"))
    return args


def resolved_config(config: dict, world: int | None = None) -> dict:
    """The configuration a run actually uses: the dataset's canonical name and the values that the
    flags leave to the dataset (None / auto) filled in. --print-config prints it; --resume compares
    the checkpoint's and the command's through it."""
    c = dict(config)
    if c.get("eval_every") is None:   # checkpoints from before --eval-every evaluated every step
        c["eval_every"] = 1
    for key in ("max_iters", "run_steps", "scale"):   # before these flags: every batch, every step
        c.setdefault(key, None)
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
