#!/usr/bin/env python
"""PUL: the supervised source baseline, then progressive unsupervised learning on the target.

    # stage 0: fine-tune on the labelled source (the original's baseline/train.py -> 0.ckpt)
    python examples/train.py --mode baseline --dataset dukemtmcreid --data-root DATA --logs-dir logs/duke
    # PUL on the unlabelled target (PUL/unsupervised.py); trains the baseline first if needed
    python examples/train.py --mode unsupervised --dataset market1501 --data-root DATA \
        --source dukemtmcreid --source-root DATA --logs-dir logs/duke-market
    # the semi-supervised variant (PUL/semi-supervised.py): 50 labelled target identities
    python examples/train.py --mode semi --dataset market1501 ... (same flags)

Defaults are the original's (224x224, batch 16, SGD 0.001/0.9, 40 baseline epochs, 25 iterations
of 20 epochs, lambda 0.85, K per target); ``--config FILE`` (repeatable) loads YAML presets from
../configs as defaults, later flags win. ``--resume`` continues a stopped run from its last
finished epoch (inside an iteration) with everything that determines the future.
"""
from __future__ import annotations

import time

T0 = time.time()  # wall time includes the TensorFlow import

import argparse  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import pul  # noqa: E402,F401  (sets KERAS_BACKEND=tensorflow before keras is imported)
from pul import PULError  # noqa: E402
from pul.datasets import NAMES, NUM_CLUSTERS, canonical_name, init_dataset  # noqa: E402
from pul.runfiles import (  # noqa: E402
    RunError,
    check_fresh_folder,
    check_resume,
    disk_full_line,
    finite_float,
    remove_stale_tmp,
)
from pul.selection import RULES  # noqa: E402

try:  # data problems found by the evaluator (no valid query, NaN distances, ...)
    from common_eval import EvaluationError  # noqa: E402
except ImportError:  # pragma: no cover - a common_eval without it
    class EvaluationError(ValueError):
        pass

HERE = Path(__file__).resolve().parent


# ============================================================================ configuration
def report_replicas(strategy) -> None:
    if strategy.num_replicas_in_sync > 1:
        devices = ", ".join(strategy.extended.worker_devices)
        print(f"   MirroredStrategy: {strategy.num_replicas_in_sync} replicas ({devices}); each batch is "
              "split between them, BatchNorm statistics per replica, gradients all-reduced")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
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
    g.add_argument("--scale", choices=("paper", "smoke"), default="paper", help="recorded in results.json")
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


def run_config(args) -> dict:
    """The resolved configuration (what --print-config prints and results.json records)."""
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "print_config"}


def stored_config(logs: Path) -> tuple[dict | None, str | None]:
    """The configuration the run in ``logs`` was trained with, and where it was found."""
    from pul.checkpoint import RunState, load_json
    for folder in (logs, logs / "baseline"):
        state = RunState(folder)
        if state.exists():
            st = state.load(restore=False)      # JSON + npz(allow_pickle=False): nothing runs
            if isinstance(st.get("config"), dict):
                return st["config"], str(state.json)
    if (logs / "args.json").is_file():
        return load_json(logs / "args.json"), str(logs / "args.json")
    return None, None


def check_run_folder(args, logs: Path) -> str | None:
    """Before anything is written: a fresh run needs a folder without a run; --resume needs a run
    there, trained with this command's settings (run plumbing aside)."""
    from pul.runfiles import run_files_in
    if not args.resume:
        check_fresh_folder(logs, f"--resume --logs-dir {logs}", "another --logs-dir")
        return None
    if not run_files_in(logs):
        raise RunError(f"--resume: {logs} holds no run to continue (no state.json, results.json or model); "
                       "start a fresh run there without --resume, or pass the --logs-dir of the run")
    saved, where = stored_config(logs)
    if saved is None:
        return None
    now = run_config(args)
    # an older run's file may lack keys added since (they are compared once it is stored again)
    both = set(saved) & set(now)
    check_resume({k: saved[k] for k in both}, {k: now[k] for k in both}, PLUMBING)
    return f"=> --resume: the settings match the run's ({where})"


# ============================================================================ helpers
def log_config(args, folder: Path) -> None:
    from pul.checkpoint import save_json
    from pul.runfiles import atomic_write
    cfg = run_config(args)
    save_json(cfg, folder / "args.json")
    text = yaml.safe_dump(cfg, sort_keys=True)
    atomic_write(folder / "config.yaml", lambda f: f.write(text.encode()))


def load_dataset(name: str, root: str, mode: str):
    kw = {}
    if name == "cuhk03":  # PUL/unsupervised.py reads bounding_box_train/, baseline and semi bbox_train/
        folder = Path(root) / "CUHK03"
        folder = folder if folder.is_dir() else Path(root)
        want = "bounding_box_train" if mode == "unsupervised" else "bbox_train"
        other = "bbox_train" if want == "bounding_box_train" else "bounding_box_train"
        kw["train_folder"] = want if (folder / want).is_dir() or not (folder / other).is_dir() else other
    ds = init_dataset(name, root, **kw)
    print(ds.summary())
    return ds


def save_inference_copy(model, path):
    """The model without optimizer state (iteration checkpoints, 0.keras)."""
    import keras

    from pul.checkpoint import save_model
    return save_model(keras.Model(model.input, model.output, name=model.name), path)


def collapse_warning(num_labels: int, where: str) -> str | None:
    """The loud line printed every time a training set has a single (pseudo-)label: the softmax then
    has nothing to separate (its loss is ~0) and the model cannot learn."""
    if num_labels > 1:
        return None
    return (f"WARNING: {where}: the training set has {num_labels} label(s): all images carry one "
            "(pseudo-)identity, so the classifier learns nothing. Check the dataset, K (--num-clusters) "
            "and lambda (--lambda)")


def pseudo_label_quality(true_pids, labels) -> dict:
    """Diagnostics only (logged, never used for training): ARI and pair precision of the
    selected images' pseudo-labels against their true identities."""
    from sklearn.metrics import adjusted_rand_score
    true_pids, labels = np.asarray(true_pids), np.asarray(labels)
    same_pred = labels[:, None] == labels[None, :]
    same_true = true_pids[:, None] == true_pids[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    pairs = (same_pred & off).sum()
    return {"ari": float(adjusted_rand_score(true_pids, labels)),
            "pair_precision": float((same_pred & same_true & off).sum() / pairs) if pairs else None}


BASELINE_KEYS = ("source", "arch", "pretrained", "height", "width", "last_stride", "base_width", "dropout",
                 "batch_size", "baseline_lr", "momentum", "baseline_epochs", "rotation", "shift", "seed")


# ============================================================================ stage 0: baseline
def run_baseline(args, folder: Path, dataset_name: str, data_root: str, scalars=None) -> dict:
    """Fine-tunes the backbone + fc8 on a labelled dataset (baseline/train.py); writes folder/0.keras
    and folder/baseline.json. Reuses a complete baseline with the same settings; resumes a stopped one."""
    from pul.checkpoint import RunState, load_json, save_json, save_model
    from pul.data import BatchStream, steps_per_epoch
    from pul.evaluation import COMMON_AP, NATIVE_AP, evaluate_model, format_metrics
    from pul.model import (
        add_classifier,
        build_backbone,
        compile_classifier,
        distribution_strategy,
        feature_model,
        load_model,
        resolve_pretrained,
    )
    from pul.preprocessing import load_images
    from pul.selection import one_hot
    from pul.training import fit

    folder.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in BASELINE_KEYS}
    settings["source"] = dataset_name
    summary_path, final_path = folder / "baseline.json", folder / "0.keras"
    if summary_path.is_file() and final_path.is_file():
        summary = load_json(summary_path)
        if summary.get("complete"):
            diff = {k: (summary["settings"].get(k), v) for k, v in settings.items()
                    if summary["settings"].get(k) != v}
            if diff:
                raise PULError(f"the finished baseline in {folder} was trained with other settings "
                               f"({', '.join(f'{k}: {a} there, {b} now' for k, (a, b) in diff.items())}); "
                               "use another --logs-dir, pass --baseline PATH, or delete that folder")
            print(f"=> reusing the finished baseline {final_path} (trained on {dataset_name})")
            summary["reused"] = True
            return summary

    t_start = time.time()
    print(f"==> stage 0: supervised baseline on {dataset_name}")
    ds = load_dataset(dataset_name, data_root, "baseline")
    size = (args.height, args.width)
    images = load_images([r[0] for r in ds.train], size, not args.no_progress, "loading source", args.workers)
    labels = np.asarray(ds.train_labels())
    num_classes = int(labels.max()) + 1   # the original hard-coded 702 (Duke)
    collapsed = collapse_warning(len(np.unique(labels)), f"the baseline on {dataset_name}")
    stream = BatchStream(images, one_hot(labels, num_classes), args.batch_size, seed=(args.seed, 0, 0),
                         rotation_range=args.rotation, width_shift_range=args.shift,
                         height_shift_range=args.shift)
    steps = steps_per_epoch(len(images), args.batch_size)

    state = RunState(folder, "state")
    last = folder / "last.keras"
    strategy = distribution_strategy(args.mirror_cpus)
    report_replicas(strategy)
    start_epoch, wall_before = 0, 0.0
    with strategy.scope():
        if args.resume and state.exists() and last.is_file():
            st = state.load()
            start_epoch, wall_before = int(st["epoch_done"]), float(st.get("wall_seconds", 0.0))
            model = load_model(last, compile=True)
            print(f"=> resuming the baseline after epoch {start_epoch} from {last}")
        else:
            weights = resolve_pretrained(args.pretrained, args.arch)
            backbone = build_backbone(args.arch, (*size, 3), weights, args.last_stride, args.base_width)
            head = add_classifier(backbone, num_classes, seed=args.seed, dropout=args.dropout)
            model = compile_classifier(head, args.baseline_lr, args.momentum)
    print(f"   {len(images)} images, {num_classes} classes, {steps} steps/epoch, "
          f"{args.baseline_epochs} epochs")

    def epoch_done(epoch, logs):
        if collapsed:
            print(collapsed + f" (epoch {epoch})")
        save_model(model, last)
        state.save({"stage": "baseline", "epoch_done": epoch, "settings": settings, "config": args._config,
                    "wall_seconds": wall_before + time.time() - t_start})
        if scalars is not None:
            scalars.log(epoch, **{"baseline/loss": logs.get("loss"),
                                  "baseline/accuracy": logs.get("accuracy"),
                                  "baseline/lr": float(model.optimizer.learning_rate.numpy())})

    fit(model, stream, args.baseline_epochs, steps, start_epoch, seed_parts=(args.seed, 0, 0),
        on_epoch_done=epoch_done, where=f"the baseline on {dataset_name}",
        verbose=0 if args.no_progress else None)
    save_inference_copy(model, final_path)
    print(f"=> baseline saved: {final_path}")
    source_metrics = None
    res = evaluate_model(feature_model(model), ds, size, args.eval_batch_size, not args.no_progress)
    source_metrics = {"common": res.metrics(COMMON_AP), "native": res.metrics(NATIVE_AP)}
    print(f"   baseline on its own test set ({dataset_name}): {format_metrics(source_metrics['native'])}")
    summary = {"complete": True, "settings": settings, "path": str(final_path), "num_classes": num_classes,
               "source_test": source_metrics, "wall_seconds": wall_before + time.time() - t_start,
               "reused": False}
    save_json(summary, summary_path)
    if last.exists():
        last.unlink()
    state.clear()
    return summary


# ============================================================================ PUL
def prepare_target(args) -> dict:
    """Lists the target, splits it into known images and the pool (semi) and resolves K, with every
    check that depends on them, before any training starts (the baseline included)."""
    semi = args.mode == "semi"
    ds = load_dataset(args.dataset, args.data_root, args.mode)
    if semi:  # 50train.list: the KNOWN lowest identities keep their labels, the rest is the pool
        known_labels = np.asarray(ds.known_labels(args.known))
        pool, known = np.flatnonzero(known_labels == -1), np.flatnonzero(known_labels >= 0)
        n_known_ids = int(known_labels.max()) + 1 if len(known) else 0
        if len(pool) == 0:
            raise PULError(f"semi: all {ds.num_train_ids} target identities are known "
                           f"(--known {args.known}); nothing is left to cluster")
    else:
        known_labels = None
        pool, known, n_known_ids = np.arange(len(ds.train)), np.array([], dtype=np.int64), 0
    k = args.num_clusters
    if str(k) == "auto":
        k = ds.num_train_ids - (n_known_ids if semi else 0)
        print(f"   K = {k}: the target's true identity count (--num-clusters auto)")
    k = int(k)
    if k > len(pool):
        raise PULError(f"K = {k} clusters but the target training set has only {len(pool)} images to "
                       "cluster; lower --num-clusters (k-means needs K <= the number of images)")
    if k < 1:
        raise PULError(f"--num-clusters must be >= 1, got {k}")
    width = args.num_ids if semi else k  # classifier width: NUM_IDS (semi) or K
    if semi and width < n_known_ids + k:
        raise PULError(f"--num-ids {width} is smaller than the known identities ({n_known_ids}) + K ({k})")
    return {"ds": ds, "known_labels": known_labels, "pool": pool, "known": known, "n_known_ids": n_known_ids,
            "K": k, "width": width}


def run_pul(args, logs: Path, baseline_path: Path, baseline_summary: dict | None, scalars,
            t_process: float, target: dict) -> dict:
    """PUL/unsupervised.py (and semi-supervised.py) for iterations 1..END; writes results.json."""
    from common_eval.results import write_results
    from pul.checkpoint import RunState, load_arrays, save_arrays
    from pul.data import BatchStream, steps_per_epoch
    from pul.evaluation import COMMON_AP, NATIVE_AP, evaluate_model, extract_features, format_metrics
    from pul.model import add_classifier, compile_classifier, distribution_strategy, feature_model, load_model
    from pul.preprocessing import load_images
    from pul.selection import kmeans, one_hot, select_reliable
    from pul.training import epoch_seed, fit

    t_start = time.time()
    semi = args.mode == "semi"
    E = args.epochs
    kind = "semi-supervised" if semi else "unsupervised"
    print(f"==> PUL ({kind}) on {args.dataset}, from {baseline_path}")
    ds, known_labels, pool, known = target["ds"], target["known_labels"], target["pool"], target["known"]
    n_known_ids, K, width = target["n_known_ids"], target["K"], target["width"]
    size = (args.height, args.width)
    images = load_images([r[0] for r in ds.train], size, not args.no_progress, "loading target", args.workers)
    true_pids = np.array([r[1] for r in ds.train])  # diagnostics only, never used for training
    extra = f", {len(known)} known images of {n_known_ids} identities, classifier width {width}"
    print(f"   K = {K} clusters on {len(pool)} images" + (extra if semi else ""))
    eval_cache = {} if args.cache_eval_images else None
    strategy = distribution_strategy(args.mirror_cpus)
    report_replicas(strategy)
    ckpt_dir = logs / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.keras"
    state = RunState(logs, "state")

    st = None
    if args.resume and state.exists():
        st = state.load()
        if st.get("stage") != "pul":
            raise PULError(f"--resume: {state.json} is not the state of a PUL run "
                           f"(stage {st.get('stage')!r})")
        if st.get("baseline") != str(baseline_path):
            raise PULError(f"--resume: the run in {logs} started from {st.get('baseline')}, "
                           f"not {baseline_path}")
        if st.get("K") != K:
            raise PULError(f"--resume: the run in {logs} used K = {st.get('K')}, now K = {K}")
        print(f"=> resuming after iteration {st['iteration']}" if st["finished"] else
              f"=> resuming iteration {st['iteration']} after epoch {st['epoch_done']}")
    elif state.exists():
        print(f"=> starting over in {logs}: the previous PUL state there is replaced (--resume continues it)")
        state.clear()

    def evaluate(model, what):
        res = evaluate_model(feature_model(model), ds, size, args.eval_batch_size, not args.no_progress,
                             eval_cache)
        m = {"common": res.metrics(COMMON_AP), "native": res.metrics(NATIVE_AP)}
        print(f"   {what}: {format_metrics(m['native'])}  |  {format_metrics(m['common'])}")
        return m

    def log_eval(step, m):
        scalars.log(step, **{"eval/mAP": m["native"]["mAP"], "eval/mAP_stepwise": m["common"]["mAP"],
                             "eval/rank1": m["native"]["rank1"], "eval/mINP": m["native"]["mINP"]})

    # ---- iteration 0: the source baseline on the target ("initial" = direct transfer)
    with strategy.scope():
        baseline = load_model(baseline_path, compile=False)
    if st is None:
        initial, history = evaluate(baseline, "baseline on the target (direct transfer)"), []
        log_eval(0, initial)
    else:
        initial, history = st["initial"], st["history"]
    wall_before = float(st.get("wall_seconds", 0.0)) if st else 0.0

    def save_state(t, epoch_done, finished, current):
        best = max((h for h in history if "eval" in h), key=lambda h: h["eval"]["native"]["mAP"],
                   default=None)
        state.save({"stage": "pul", "iteration": t, "epoch_done": epoch_done, "finished": finished,
                    "current": current, "baseline": str(baseline_path), "K": K, "initial": initial,
                    "history": history, "best": best, "config": args._config,
                    "wall_seconds": wall_before + time.time() - t_start})

    # where to continue: after the last finished iteration, or inside the interrupted one
    start_t, inside = 1, None
    if st is not None:
        start_t = st["iteration"] + 1 if st["finished"] else st["iteration"]
        if not st["finished"]:
            inside = st
    previous = baseline if start_t == 1 else None   # the model that extracts iteration t's features

    for t in range(start_t, args.iterations + 1):
        print(f"==> iteration {t}/{args.iterations}")
        sel_file = logs / f"selection_{t}.npz"
        if inside is not None and sel_file.is_file():
            # ---- resumed inside this iteration: its selection, and the model + optimizer of its last epoch
            arrays = load_arrays(sel_file)
            train_idx, train_lab = arrays["train_indices"], arrays["train_labels"]
            info, start_epoch = inside["current"], int(inside["epoch_done"])
            print(f"   (resumed) {len(train_idx)} training images, continuing after epoch {start_epoch}")
        else:
            # ---- 1-2. avg_pool features of the target training images, previous model
            if previous is None:  # resumed after iteration t - 1
                with strategy.scope():
                    previous = load_model(ckpt_dir / f"{t - 1}.keras", compile=False)
            feats = extract_features(feature_model(previous), images[pool], args.eval_batch_size,
                                     not args.no_progress, "target features")
            # ---- 3. k-means with K on the raw features
            clustering = kmeans(feats, K, seed=epoch_seed(args.seed, 1, t, 1), n_init=args.kmeans_n_init,
                                max_iter=args.kmeans_max_iter)
            # ---- 4-6. centre images, cosine similarity, reliable images keep their k-means label
            sel = select_reliable(feats, clustering, args.lam, args.selection)
            rel = pool[sel.indices]
            info = {"selected": sel.num_selected, "clusters_used": sel.num_clusters_used,
                    **pseudo_label_quality(true_pids[rel], sel.labels)}
            print(f"   reliable images: {sel.num_selected}/{len(pool)} in {sel.num_clusters_used}/{K} "
                  f"clusters "
                  f"(lambda {args.lam}, rule '{args.selection}'); vs true ids (diagnostic only): "
                  f"ARI {info['ari']:.3f}, pair precision {info['pair_precision'] or 0:.3f}")
            # ---- 7. training set: reliable images with one-hot(K) labels (semi: + the known images)
            train_idx = np.concatenate([known, rel]).astype(np.int64)
            train_lab = np.concatenate([known_labels[known] if semi else np.zeros(0, np.int64),
                                        sel.labels + n_known_ids]).astype(np.int64)
            save_arrays(sel_file, train_indices=train_idx, train_labels=train_lab,
                        kmeans_labels=clustering.labels, selected=sel.indices, similarity=sel.similarity)
            start_epoch = 0
            save_state(t, 0, False, info)
        with strategy.scope():
            if start_epoch > 0:
                model = load_model(last, compile=True)
            else:
                # ---- 8. a fresh copy of the baseline (0.keras), new fc8 of K (semi: NUM_IDS) classes
                model = compile_classifier(
                    add_classifier(load_model(baseline_path, compile=False), width,
                                   seed=epoch_seed(args.seed, 1, t, 2), dropout=args.dropout),
                    args.lr, args.momentum)
        inside = None
        collapsed = collapse_warning(len(np.unique(train_lab)), f"PUL iteration {t}")
        if collapsed:
            print(collapsed)

        # ---- 9. fine-tune on the reliable set: SGD, augmentation, E epochs of ceil(n/16 + 1) steps
        stream = BatchStream(images[train_idx], one_hot(train_lab, width), args.batch_size,
                             seed=(args.seed, 1, t), rotation_range=args.rotation,
                             width_shift_range=args.shift, height_shift_range=args.shift)
        steps = steps_per_epoch(len(train_idx), args.batch_size)
        print(f"   fine-tuning a fresh baseline copy: {len(train_idx)} images, {width} classes, "
              f"{steps} steps/epoch, epochs {start_epoch + 1}..{E}")

        def epoch_done(epoch, logs_, t=t, info=info, model_=model, collapsed=collapsed):
            if collapsed:
                print(collapsed + f" (epoch {epoch})")
            save_model_atomic(model_, last)
            save_state(t, epoch, False, info)
            scalars.log((t - 1) * E + epoch, **{"pul/loss": logs_.get("loss"),
                                               "pul/accuracy": logs_.get("accuracy"),
                                               "pul/lr": float(model_.optimizer.learning_rate.numpy())})

        fit(model, stream, E, steps, start_epoch, seed_parts=(args.seed, 1, t), on_epoch_done=epoch_done,
            where=f"PUL iteration {t}", verbose=0 if args.no_progress else None)

        # ---- 10. save iteration t's model; evaluate (the original evaluated every checkpoint)
        save_inference_copy(model, ckpt_dir / f"{t}.keras")
        if args.keep_checkpoints == "last" and t > 1 and (ckpt_dir / f"{t - 1}.keras").exists():
            (ckpt_dir / f"{t - 1}.keras").unlink()
        record = {"iteration": t, **info}
        scalars.log(t, **{"pul/selected": info["selected"], "pul/not_reliable": len(pool) - info["selected"],
                          "pul/clusters_used": info["clusters_used"], "pul/pseudo_label_ari": info["ari"]})
        if t == args.iterations or (args.eval_every and t % args.eval_every == 0):
            record["eval"] = evaluate(model, f"iteration {t} on the target")
            log_eval(t, record["eval"])
        history.append(record)
        save_state(t, E, True, None)
        if last.exists():
            last.unlink()
        previous = model

    # ---- results.json: the last iteration's model (the repo gives no rule to pick one of the 25)
    final = next((h for h in reversed(history) if h["iteration"] == args.iterations and "eval" in h), None)
    if final is None:  # finished before, only the results are missing
        with strategy.scope():
            final = {"eval": evaluate(load_model(ckpt_dir / f"{args.iterations}.keras", compile=False),
                                      f"iteration {args.iterations} on the target")}
    best = max((h for h in history if "eval" in h), key=lambda h: h["eval"]["native"]["mAP"], default=None)
    pul_wall = wall_before + time.time() - t_start
    baseline_wall = float(baseline_summary.get("wall_seconds", 0.0)) if baseline_summary else 0.0
    reused = bool(baseline_summary.get("reused")) if baseline_summary else True
    # end to end: this process (import, baseline if trained now, PUL) + earlier sessions of this run
    wall = time.time() - t_process + wall_before + (baseline_wall if reused else 0.0)
    short = {"market1501": "market", "dukemtmcreid": "duke"}  # results.json: ./reproduce.sh's names
    path = write_results(
        logs, method="pul", variant="semi" if semi else None, source=short.get(args.source, args.source),
        target=short.get(args.dataset, args.dataset),
        scale=args.scale, common=final["eval"]["common"], native=final["eval"]["native"],
        initial=initial["common"], selection="last", last=final["eval"]["common"],
        epochs=args.iterations, wall_seconds=wall,
        command=args.command, config=run_config(args),
        initial_native=initial["native"], baseline_target=initial,
        baseline={"path": str(baseline_path), "reused": reused, "wall_seconds": baseline_wall,
                  "source_test": (baseline_summary or {}).get("source_test")},
        iterations=args.iterations, epochs_per_iteration=E, num_clusters=K, history=history,
        best_on_test={"iteration": best["iteration"], **best["eval"]} if best else None,
        pul_wall_seconds=pul_wall)
    print(f"==> target {args.dataset}: baseline mAP {initial['native']['mAP']:.1f} -> PUL mAP "
          f"{final['eval']['native']['mAP']:.1f} (trapezoid); stepwise {initial['common']['mAP']:.1f} -> "
          f"{final['eval']['common']['mAP']:.1f}; results: {path}")
    return {"initial": initial, "final": final["eval"], "results": str(path)}


def save_model_atomic(model, path):
    from pul.checkpoint import save_model
    return save_model(model, path)


# ============================================================================ main
def error_line(message: str, tee=None) -> int:
    """One line on stderr (and in log.txt when it is open): 'error: <problem>; <fix>'; exit code 2."""
    line = message if message.startswith("error: ") else f"error: {message}"
    line = " ".join(line.split("\n"))
    print(line, file=sys.stderr)
    if tee is not None:
        try:
            tee.file.write(line + "\n")
        except (OSError, ValueError):
            pass
    return 2


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_config:
        print(yaml.safe_dump(args._config, sort_keys=True), end="")
        return 0
    logs = Path(args.logs_dir).resolve()
    tee = None
    try:
        resumed = check_run_folder(args, logs)       # before anything is written
        logs.mkdir(parents=True, exist_ok=True)
        from pul.training import Tee
        tee = Tee(sys.stdout, logs / "log.txt")
        sys.stdout = tee
        print(f"==> {args.command}")
        if resumed:
            print(resumed)
        for folder in (logs, logs / "checkpoints", logs / "baseline"):
            for p in remove_stale_tmp(folder):
                print(f"=> removed {p}, the temporary file of a write that was interrupted")
        # where the baseline comes from, the target's listing, K and every check that depends on
        # them: before any training
        target = None
        if args.mode != "baseline":
            check_baseline_given(args, logs)
            target = prepare_target(args)
        return run(args, logs, target)
    except PULError as exc:
        return error_line(str(exc), tee)
    except EvaluationError as exc:
        return error_line(f"evaluation failed: {exc}; check the query and gallery folders of the dataset",
                          tee)
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        return error_line(line, tee)
    finally:
        if tee is not None:
            sys.stdout = tee.stream
            tee.close()


def check_baseline_given(args, logs: Path) -> None:
    if args.baseline:
        if not Path(args.baseline).is_file():
            raise PULError(f"--baseline {args.baseline}: no such file; pass the 0.keras of a baseline run "
                           "or --source NAME --source-root DIR to train one")
    elif not args.source and not (logs / "baseline" / "0.keras").is_file():
        raise PULError("PUL starts from a model fine-tuned on a labelled source: pass --source NAME "
                       "--source-root DIR (trained into LOGS/baseline/) or --baseline PATH")


def run(args, logs: Path, target: dict | None) -> int:
    import tensorflow as tf

    from pul.training import Scalars, set_seeds
    tf.get_logger().setLevel("ERROR")  # retracing notices of predict_on_batch on new models
    if args.mirror_cpus > 1:  # the logical devices exist only if made before TensorFlow runs anything
        from pul.model import distribution_strategy
        distribution_strategy(args.mirror_cpus)
    log_config(args, logs)
    set_seeds(args.seed, args.deterministic)
    scalars = Scalars(logs / "tensorboard")
    if args.mode == "baseline":
        run_baseline(args, logs, args.dataset, args.data_root, scalars)
        scalars.close()
        return 0
    if args.baseline:
        baseline_path, summary = Path(args.baseline).resolve(), None
        if not baseline_path.is_file():
            raise PULError(f"--baseline {baseline_path}: no such file")
        sfile = baseline_path.parent / "baseline.json"
        if sfile.is_file():
            from pul.checkpoint import load_json
            summary = {**load_json(sfile), "reused": True}
    elif args.source:
        summary = run_baseline(args, logs / "baseline", args.source, args.source_root or args.data_root,
                               scalars)
        baseline_path = Path(summary["path"])
    else:
        baseline_path = logs / "baseline" / "0.keras"
        if not baseline_path.is_file():
            raise PULError("PUL starts from a model fine-tuned on a labelled source: pass --source NAME "
                           "--source-root DIR (trained into LOGS/baseline/) or --baseline PATH")
        from pul.checkpoint import load_json
        sfile = baseline_path.parent / "baseline.json"
        summary = {**load_json(sfile), "reused": True} if sfile.is_file() else None
        args.source = (summary or {}).get("settings", {}).get("source")
    run_pul(args, logs, baseline_path, summary, scalars, T0, target)
    scalars.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
