"""The plumbing of a run that is the same every time, around the epoch loop of ../examples/train.py:
the run-folder preflight, main()'s error handling, the one place that decides fresh run vs resume,
the target's listing and K, the PUL state and best/last bookkeeping, results.json.

Plain arguments only (no argparse, no YAML): examples/options.py resolves the command line.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from pul import PULError
from pul.runfiles import RunError, check_fresh_folder, check_resume, disk_full_line, remove_stale_tmp

try:  # data problems found by the evaluator (no valid query, NaN distances, ...)
    from common_eval import EvaluationError
except ImportError:  # pragma: no cover - a common_eval without it
    class EvaluationError(ValueError):
        pass

# what decides whether a finished baseline can be reused (compared with baseline.json's settings)
BASELINE_KEYS = ("source", "arch", "pretrained", "height", "width", "last_stride", "base_width", "dropout",
                 "batch_size", "baseline_lr", "momentum", "baseline_epochs", "rotation", "shift", "seed",
                 "max_steps")
SHORT_NAMES = {"market1501": "market", "dukemtmcreid": "duke"}  # results.json: ./reproduce.sh's names


# ============================================================================ main()
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


def run_in_logs_dir(logs: Path, command: str, preflight, body) -> int:
    """main()'s frame: ``preflight()`` checks the run folder before anything is written (it returns
    the line to print on --resume, or None), then log.txt tees stdout, interrupted writes are cleaned
    up and ``body()`` runs; a user error (bad data, full disk, failed evaluation) is one line, exit 2."""
    tee = None
    try:
        resumed = preflight()
        logs.mkdir(parents=True, exist_ok=True)
        from pul.training import Tee
        tee = Tee(sys.stdout, logs / "log.txt")
        sys.stdout = tee
        print(f"==> {command}")
        if resumed:
            print(resumed)
        for folder in (logs, logs / "checkpoints", logs / "baseline"):
            for p in remove_stale_tmp(folder):
                print(f"=> removed {p}, the temporary file of a write that was interrupted")
        return body()
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


# ============================================================================ run folder
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


def check_run_folder(logs: Path, resume: bool, config: dict, may_change) -> str | None:
    """Before anything is written: a fresh run needs a folder without a run; --resume needs a run
    there, trained with this command's settings (``may_change``, the run plumbing, aside)."""
    from pul.runfiles import run_files_in
    if not resume:
        check_fresh_folder(logs, f"--resume --logs-dir {logs}", "another --logs-dir")
        return None
    if not run_files_in(logs):
        raise RunError(f"--resume: {logs} holds no run to continue (no state.json, results.json or model); "
                       "start a fresh run there without --resume, or pass the --logs-dir of the run")
    saved, where = stored_config(logs)
    if saved is None:
        return None
    # an older run's file may lack keys added since (they are compared once it is stored again)
    both = set(saved) & set(config)
    check_resume({k: saved[k] for k in both}, {k: config[k] for k in both}, may_change)
    return f"=> --resume: the settings match the run's ({where})"


def write_config(config: dict, config_yaml: str, folder: Path) -> None:
    """args.json and config.yaml (``config_yaml``: the same configuration as YAML text, made by
    examples/options.py): the resolved configuration of the run."""
    from pul.checkpoint import save_json
    from pul.runfiles import atomic_write
    save_json(config, folder / "args.json")
    atomic_write(folder / "config.yaml", lambda f: f.write(config_yaml.encode()))


def set_up(logs: Path, config: dict, config_yaml: str, seed: int, deterministic: bool, mirror_cpus: int):
    """TensorFlow's logger, the logical CPU devices of --mirror-cpus, args.json/config.yaml and the
    seeds; returns the TensorBoard writer of the run."""
    import tensorflow as tf

    from pul.training import Scalars, set_seeds
    tf.get_logger().setLevel("ERROR")  # retracing notices of predict_on_batch on new models
    if mirror_cpus > 1:  # the logical devices exist only if made before TensorFlow runs anything
        from pul.model import distribution_strategy
        distribution_strategy(mirror_cpus)
    write_config(config, config_yaml, logs)
    set_seeds(seed, deterministic)
    return Scalars(logs / "tensorboard")


def report_replicas(strategy) -> None:
    if strategy.num_replicas_in_sync > 1:
        devices = ", ".join(strategy.extended.worker_devices)
        print(f"   MirroredStrategy: {strategy.num_replicas_in_sync} replicas ({devices}); each batch is "
              "split between them, BatchNorm statistics per replica, gradients all-reduced")


def replicated(mirror_cpus: int):
    """The distribution strategy (MirroredStrategy over several GPUs or --mirror-cpus N logical CPUs,
    else the default one), reported when it mirrors."""
    from pul.model import distribution_strategy
    strategy = distribution_strategy(mirror_cpus)
    report_replicas(strategy)
    return strategy


# ============================================================================ resume or load
def resume_or_load(state, resume: bool, stage: str, last: Path | None = None,
                   expect: dict | None = None) -> dict | None:
    """The one place that decides fresh run vs resume; returns the state to continue from, or None.

    stage 'baseline': the state of a stopped baseline when --resume and its last.keras are there.
    stage 'pul': with --resume, the PUL state in the folder, which must have started from
    ``expect['baseline']`` with ``expect['K']`` clusters; without --resume, a previous PUL state
    there is replaced."""
    if stage == "baseline":
        return state.load() if resume and state.exists() and last.is_file() else None
    if resume and state.exists():
        st = state.load()
        logs = state.folder
        if st.get("stage") != "pul":
            raise PULError(f"--resume: {state.json} is not the state of a PUL run "
                           f"(stage {st.get('stage')!r})")
        if st.get("baseline") != expect["baseline"]:
            raise PULError(f"--resume: the run in {logs} started from {st.get('baseline')}, "
                           f"not {expect['baseline']}")
        if st.get("K") != expect["K"]:
            raise PULError(f"--resume: the run in {logs} used K = {st.get('K')}, now K = {expect['K']}")
        print(f"=> resuming after iteration {st['iteration']}" if st["finished"] else
              f"=> resuming iteration {st['iteration']} after epoch {st['epoch_done']}")
        return st
    if state.exists():
        print(f"=> starting over in {state.folder}: the previous PUL state there is replaced "
              "(--resume continues it)")
        state.clear()
    return None


def resume_point(st: dict | None) -> tuple[int, dict | None]:
    """Where PUL continues: the first iteration to run, and the state when inside it (None: from its
    start): after the last finished iteration, or inside the interrupted one."""
    if st is None:
        return 1, None
    if st["finished"]:
        return st["iteration"] + 1, None
    return st["iteration"], st


def reusable_baseline(folder: Path, settings: dict, dataset_name: str) -> dict | None:
    """The summary of a finished baseline in ``folder`` trained with ``settings`` (None: none there);
    a finished one with other settings is an error."""
    from pul.checkpoint import load_json
    summary_path, final_path = folder / "baseline.json", folder / "0.keras"
    if not (summary_path.is_file() and final_path.is_file()):
        return None
    summary = load_json(summary_path)
    if not summary.get("complete"):
        return None
    diff = {k: (summary["settings"].get(k), v) for k, v in settings.items()
            if summary["settings"].get(k) != v}
    if diff:
        raise PULError(f"the finished baseline in {folder} was trained with other settings "
                       f"({', '.join(f'{k}: {a} there, {b} now' for k, (a, b) in diff.items())}); "
                       "use another --logs-dir, pass --baseline PATH, or delete that folder")
    print(f"=> reusing the finished baseline {final_path} (trained on {dataset_name})")
    summary["reused"] = True
    return summary


def check_baseline_given(baseline: str | None, source: str | None, logs: Path) -> None:
    if baseline:
        if not Path(baseline).is_file():
            raise PULError(f"--baseline {baseline}: no such file; pass the 0.keras of a baseline run "
                           "or --source NAME --source-root DIR to train one")
    elif not source and not (logs / "baseline" / "0.keras").is_file():
        raise PULError("PUL starts from a model fine-tuned on a labelled source: pass --source NAME "
                       "--source-root DIR (trained into LOGS/baseline/) or --baseline PATH")


def given_baseline(baseline: str | None, logs: Path) -> tuple[Path, dict | None]:
    """The baseline PUL starts from when none is trained now: --baseline PATH, or LOGS/baseline/0.keras;
    with its baseline.json summary when there is one."""
    from pul.checkpoint import load_json
    if baseline:
        baseline_path = Path(baseline).resolve()
        if not baseline_path.is_file():
            raise PULError(f"--baseline {baseline_path}: no such file")
    else:
        baseline_path = logs / "baseline" / "0.keras"
        if not baseline_path.is_file():
            raise PULError("PUL starts from a model fine-tuned on a labelled source: pass --source NAME "
                           "--source-root DIR (trained into LOGS/baseline/) or --baseline PATH")
    sfile = baseline_path.parent / "baseline.json"
    return baseline_path, ({**load_json(sfile), "reused": True} if sfile.is_file() else None)


# ============================================================================ data
def load_dataset(name: str, root: str, mode: str):
    from pul.datasets import init_dataset
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


def prepare_target(name: str, root: str, mode: str, known: int, num_clusters, num_ids: int | None) -> dict:
    """Lists the target, splits it into known images and the pool (semi) and resolves K, with every
    check that depends on them, before any training starts (the baseline included)."""
    semi = mode == "semi"
    ds = load_dataset(name, root, mode)
    if semi:  # 50train.list: the KNOWN lowest identities keep their labels, the rest is the pool
        known_labels = np.asarray(ds.known_labels(known))
        pool, known_idx = np.flatnonzero(known_labels == -1), np.flatnonzero(known_labels >= 0)
        n_known_ids = int(known_labels.max()) + 1 if len(known_idx) else 0
        if len(pool) == 0:
            raise PULError(f"semi: all {ds.num_train_ids} target identities are known "
                           f"(--known {known}); nothing is left to cluster")
    else:
        known_labels = None
        pool, known_idx, n_known_ids = np.arange(len(ds.train)), np.array([], dtype=np.int64), 0
    k = num_clusters
    if str(k) == "auto":
        k = ds.num_train_ids - (n_known_ids if semi else 0)
        print(f"   K = {k}: the target's true identity count (--num-clusters auto)")
    k = int(k)
    if k > len(pool):
        raise PULError(f"K = {k} clusters but the target training set has only {len(pool)} images to "
                       "cluster; lower --num-clusters (k-means needs K <= the number of images)")
    if k < 1:
        raise PULError(f"--num-clusters must be >= 1, got {k}")
    width = num_ids if semi else k  # classifier width: NUM_IDS (semi) or K
    if semi and width < n_known_ids + k:
        raise PULError(f"--num-ids {width} is smaller than the known identities ({n_known_ids}) + K ({k})")
    return {"ds": ds, "known_labels": known_labels, "pool": pool, "known": known_idx,
            "n_known_ids": n_known_ids, "K": k, "width": width}


# ============================================================================ checks and diagnostics
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


# ============================================================================ models and evaluation
def save_inference_copy(model, path, config: dict | None = None):
    """The model without optimizer state (iteration checkpoints, 0.keras), with the run's
    configuration inside (``config``, see pul.checkpoint.save_model)."""
    import keras

    from pul.checkpoint import save_model
    return save_model(keras.Model(model.input, model.output, name=model.name), path, config)


def checkpoint_config(config: dict, stage: str, iteration: int) -> dict:
    """What a checkpoint carries: the run's resolved configuration, which stage wrote it
    ('baseline': trained on the source; 'pul': iteration N on the target) and the iteration."""
    return {**config, "stage": stage, "iteration": int(iteration)}


def evaluate_target(model, ds, size, batch_size: int, progress: bool, cache, what: str) -> dict:
    """Both AP flavours of ``model``'s avg_pool features on the target's query/gallery, printed."""
    from pul.evaluation import COMMON_AP, NATIVE_AP, evaluate_model, format_metrics
    from pul.model import feature_model
    res = evaluate_model(feature_model(model), ds, size, batch_size, progress, cache)
    m = {"common": res.metrics(COMMON_AP), "native": res.metrics(NATIVE_AP)}
    print(f"   {what}: {format_metrics(m['native'])}  |  {format_metrics(m['common'])}")
    return m


def log_eval(scalars, step: int, m: dict) -> None:
    """The common tags of the five methods (eval/mAP, eval/rank1: the common step-wise flavour,
    percent) and PUL's own (pul/mAP_trapezoid: the original's AP; eval/mINP)."""
    scalars.log(step, **{"eval/mAP": m["common"]["mAP"], "eval/rank1": m["common"]["rank1"],
                         "pul/mAP_trapezoid": m["native"]["mAP"], "eval/mINP": m["common"]["mINP"]})


class PhaseTimer:
    """Seconds of the phases of a PUL iteration (extract, kmeans, selection, train, evaluate):
    ``with timer("kmeans"): ...`` adds the phase's wall seconds to ``timer.seconds``.
    ``entry()``: what a history entry records, with the phases common to the five methods."""

    COMMON = ("extract", "cluster", "train", "evaluate")

    def __init__(self, seconds: dict | None = None):
        self.seconds = dict(seconds or {})

    @contextlib.contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t, 3)

    def entry(self) -> dict:
        """The seconds of every phase run, plus the common four (0.0 when a phase did not run);
        "cluster" = kmeans + selection."""
        s = self.seconds
        cluster = round(s.get("kmeans", 0.0) + s.get("selection", 0.0), 3)
        return {**{k: 0.0 for k in self.COMMON}, **s, "cluster": cluster}

    def line(self) -> str:
        return "   seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())


def gpu_peak_mb() -> float | None:
    """TensorFlow's peak memory on the first GPU since the process started (MiB); None without one."""
    import tensorflow as tf
    if not tf.config.list_logical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20


# ============================================================================ bookkeeping
def log_epoch(scalars, step: int, prefix: str, logs: dict, model) -> None:
    """TensorBoard: loss, accuracy and learning rate of a finished epoch."""
    scalars.log(step, **{f"{prefix}/loss": logs.get("loss"), f"{prefix}/accuracy": logs.get("accuracy"),
                         f"{prefix}/lr": float(model.optimizer.learning_rate.numpy())})


def finish_baseline(model, folder: Path, ds, size, eval_batch_size: int, progress: bool, settings: dict,
                    num_classes: int, wall_before: float, t_start: float, state, last: Path,
                    config: dict | None = None) -> dict:
    """0.keras (no optimizer state), the baseline on its own test set, baseline.json (what a later
    run reuses); the per-epoch last.keras and state go."""
    from pul.checkpoint import save_json
    from pul.evaluation import COMMON_AP, NATIVE_AP, evaluate_model, format_metrics
    from pul.model import feature_model
    final_path = folder / "0.keras"
    save_inference_copy(model, final_path, config)
    print(f"=> baseline saved: {final_path}")
    res = evaluate_model(feature_model(model), ds, size, eval_batch_size, progress)
    source_metrics = {"common": res.metrics(COMMON_AP), "native": res.metrics(NATIVE_AP)}
    native = format_metrics(source_metrics["native"])
    print(f"   baseline on its own test set ({settings['source']}): {native}")
    summary = {"complete": True, "settings": settings, "path": str(final_path), "num_classes": num_classes,
               "source_test": source_metrics, "wall_seconds": wall_before + time.time() - t_start,
               "reused": False}
    save_json(summary, folder / "baseline.json")
    if last.exists():
        last.unlink()
    state.clear()
    return summary


def best_record(history: list) -> dict | None:
    """The evaluated iteration with the highest (native) mAP: recorded, never used to pick a model."""
    return max((h for h in history if "eval" in h), key=lambda h: h["eval"]["native"]["mAP"], default=None)


def last_record(history: list, iterations: int) -> dict | None:
    """The evaluated record of the last iteration (the model results.json reports), if any."""
    return next((h for h in reversed(history) if h["iteration"] == iterations and "eval" in h), None)


def save_pul_state(state, t: int, epoch_done: int, finished: bool, current, baseline_path, K: int,
                   initial: dict, history: list, config: dict, wall_seconds: float) -> None:
    """state.json (+ RNG states) of the PUL stage: where to continue and everything measured so far."""
    state.save({"stage": "pul", "iteration": t, "epoch_done": epoch_done, "finished": finished,
                "current": current, "baseline": str(baseline_path), "K": K, "initial": initial,
                "history": history, "best": best_record(history), "config": config,
                "wall_seconds": wall_seconds})


def write_pul_results(logs: Path, *, semi: bool, source: str | None, target: str, scale: str, final: dict,
                      initial: dict, history: list, iterations: int, epochs: int, K: int, command: str,
                      config: dict, baseline_path: Path, baseline_summary: dict | None, wall_before: float,
                      t_start: float, t_process: float) -> Path:
    """results.json of a PUL run (the last iteration's model: the repo gives no rule to pick one)."""
    from common_eval.results import write_results
    best = best_record(history)
    pul_wall = wall_before + time.time() - t_start
    baseline_wall = float(baseline_summary.get("wall_seconds", 0.0)) if baseline_summary else 0.0
    reused = bool(baseline_summary.get("reused")) if baseline_summary else True
    # end to end: this process (import, baseline if trained now, PUL) + earlier sessions of this run
    wall = time.time() - t_process + wall_before + (baseline_wall if reused else 0.0)
    return write_results(
        logs, method="pul", variant="semi" if semi else None, source=SHORT_NAMES.get(source, source),
        target=SHORT_NAMES.get(target, target),
        scale=scale, common=final["eval"]["common"], native=final["eval"]["native"],
        initial=initial["common"], selection="last", last=final["eval"]["common"],
        epochs=iterations, wall_seconds=wall,
        command=command, config=config,
        initial_native=initial["native"], baseline_target=initial,
        baseline={"path": str(baseline_path), "reused": reused, "wall_seconds": baseline_wall,
                  "source_test": (baseline_summary or {}).get("source_test")},
        iterations=iterations, epochs_per_iteration=epochs, num_clusters=K, history=history,
        best_on_test={"iteration": best["iteration"], **best["eval"]} if best else None,
        pul_wall_seconds=pul_wall)
