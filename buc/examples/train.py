"""BUC training: ``python examples/train.py -d market1501 --size_penalty 0.003 -mp 0.05``.

The original's ``run.py`` flags and defaults (spec B10), plus the constants it hard-coded as flags
with the same values, plus this project's run infrastructure (seed, resume, pretrained weights,
smoke preset, learned metric, ghost BatchNorm, mixed precision, torchrun). The main loop below
reads top to bottom:

    for each step:  train on the current clusters -> evaluate -> merge (memory reset to zeros)

(``--eval-every N``: evaluate only after every N-th step and the last; ``--run-steps N``: only
the first N steps, each with its merge; ``--max-iters N``: at most N batches per epoch. The
phases' seconds of each step, the images they ran and the GPU peak go to log.txt,
results.json's history and TensorBoard.)

Presets: ``--config FILE`` loads a YAML file as argparse defaults; ``--smoke`` loads
``configs/smoke-image.yaml`` or ``configs/smoke-video.yaml`` (CPU, synthetic data). Flags given
on the command line always win.

Multi-GPU: ``torchrun --nproc_per_node=N examples/train.py ...`` (DistributedDataParallel; nccl
on CUDA, gloo on the CPU). Rank 0 evaluates, merges, logs and writes every file; a single
process (no torchrun) is the run it always was.

The flags, presets and ``--print-config`` are in ``options.py``; the run plumbing (errors, fresh run
or resume, run folder, set-up, checkpoint, best/last, results.json) in ``buc/engine.py``.
"""
from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
# made a ResNet-18 step 3-10x slower (measured); on a quiet machine the cost is negligible.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from options import PLUMBING, parse_args, print_config, resolved_config  # noqa: E402

from buc import engine, models  # noqa: E402
from buc.bottom_up import BottomUp  # noqa: E402
from buc.dist_metric import DistanceMetric  # noqa: E402
from buc.engine import check_schedule, check_world, collapse_warning, metrics_of, purity  # noqa: E402
from buc.utils import distributed as du  # noqa: E402


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_config:
        print_config(args)
        return 0
    return engine.report_errors(start, args, argv)


def start(args, argv) -> int:
    """Fresh run or resume (decided once, before anything is written), then the run in its folder."""
    logs_dir = Path(args.logs_dir)
    if args.bn_slices is None:   # resolved before anything is compared or written
        args.bn_slices = resolved_config(vars(args))["bn_slices"]
    resume = engine.resume_or_load(logs_dir, args.resume, vars(args), resolved_config, PLUMBING)
    return engine.in_run_folder(logs_dir, resume is not None, run, args, logs_dir, resume, argv)


def run(args, logs_dir: Path, resume, argv) -> int:
    t_start = time.time()
    command = engine.command_line(argv)
    print(f"==> {command}")
    device, rank, world = engine.set_up(vars(args), logs_dir, seed=args.seed, threads=args.threads,
                                        device=args.device)
    main_rank = rank == 0

    # ---- data: every training sample (image or tracklet) starts as its own cluster
    dataset = engine.load_dataset(args.dataset, args.data_dir, converted_dir=args.converted_dir,
                                  link=args.link, reconvert=args.reconvert, progress=args.progress,
                                  main_rank=main_rank)
    num_samples = len(dataset.train)
    nums_to_merge = int(num_samples * args.merge_percent)
    num_steps = args.steps if args.steps is not None else int(1 / args.merge_percent) - 1
    check_schedule(num_samples, nums_to_merge, num_steps, args.merge_percent)
    last = num_steps if args.run_steps is None else min(num_steps, args.run_steps)   # steps this run makes
    fixed_layer = dataset.is_video if args.fixed_layer == "auto" else args.fixed_layer == "yes"
    check_world(args.batch_size, args.bn_slices, world)

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
                  channels_last=args.channels_last, cache_images=args.cache_images,
                  max_iters=args.max_iters)
    metric = DistanceMetric(args.metric) if args.metric != "euclidean" else None
    cmc_configs = ("allshots", "cuhk03", "market1501") if args.cmc_configs == "all" else ("market1501",)
    true_pids = np.array([r[1] for r in dataset.train])   # diagnostics only (merge purity)
    print(f"samples {num_samples}, steps {num_steps}"
          + (f" (running the first {last}: --run-steps)" if last < num_steps else "")
          + f", merges per step {nums_to_merge}, device {device}, fixed layers {fixed_layer}, "
            f"BN slices {args.bn_slices}"
          + (f", DistributedDataParallel over {world} process{'es' if world > 1 else ''}"
             if du.is_dist() else ""))

    resolved = resolved_config(vars(args))   # stored as "config" in every checkpoint
    resolved.pop("print_config", None)
    writer = engine.open_writer(logs_dir, main_rank)
    state = engine.restore_state(bu, resume, num_samples, rank)   # fresh, or the checkpoint's
    ckpt_path = logs_dir / "checkpoint.pth.tar"

    def save(step, epoch, optimizer=None):   # checkpoint.pth.tar (rank 0)
        engine.save_state(ckpt_path, bu, state, vars(args), t_start, step, epoch, optimizer,
                          main_rank=main_rank, resolved=resolved)

    # ---- the starting model, evaluated as every step will be
    if state["initial"] is None and main_rank:
        print("initial model (before step 0):")
        state["initial"] = metrics_of(bu.evaluate(dataset.query, dataset.gallery, cmc_configs=cmc_configs,
                                                  seed=args.seed))
        log_metrics(writer, state["initial"], 0)
        save(0, 0)

    epochs_run, steps_run = 0, 0
    for step in range(state["step"], last):
        labels = state["labels"]
        clusters = int(labels.max()) + 1
        print(f"step:  {step}  ({clusters} clusters)")
        warning = collapse_warning(clusters, len(np.unique(true_pids)), num_samples)
        if warning:
            print(warning)
        writer.add_scalar("cluster/clusters", clusters, step)
        writer.add_scalar("cluster/outliers", 0, step)      # BUC leaves no sample outside a cluster
        seconds = {"train": 0.0, "evaluate": 0.0, "extract": 0.0, "merge": 0.0}   # this step's phases
        images = {"train": 0, "extract": 0}   # images (video: frames) through the network: training, merge

        # train on the current clusters (resumes inside the step from the saved epoch)
        def on_epoch_end(s, epoch, optimizer, stats, images=images):
            writer.add_scalar("train/lr", stats["lr"], bu._global_iter(s, epoch + 1, stats["iterations"]))
            writer.add_scalar("time/epoch", stats["seconds"], bu._global_iter(s, epoch, 1))
            images["train"] += stats["iterations"] * args.batch_size * bu.frames_per_video   # global batch
            save(s, epoch + 1, optimizer)

        budget = None if args.stop_after_epochs is None else args.stop_after_epochs - epochs_run
        t0 = time.time()
        epochs_run += bu.train(labels, step, start_epoch=state["epoch"], optimizer_state=state["optimizer"],
                               on_epoch_end=on_epoch_end, writer=writer, stop_after_epochs=budget)
        seconds["train"] = time.time() - t0
        if args.stop_after_epochs is not None and epochs_run >= args.stop_after_epochs:
            print(f"stopping after {epochs_run} epochs as asked (--stop_after_epochs); "
                  f"continue with --resume")
            writer.close()
            return 0

        # evaluate on query / gallery, as the original does after every step (rank 0); with
        # --eval-every N only every N-th step and the last (the skipped ones take the same draws)
        entry = {"step": step, "clusters": clusters}
        t0 = time.time()
        if main_rank and evaluates(step, args.eval_every, last):
            result = bu.evaluate(dataset.query, dataset.gallery, metric=metric, labels=labels,
                                 cmc_configs=cmc_configs, seed=args.seed)
            entry.update(metrics_of(result))
            log_metrics(writer, entry, step + 1)
        elif main_rank:
            bu.skip_evaluation(dataset.query, dataset.gallery, metric=metric)
            print(f"evaluation skipped (--eval-every {args.eval_every})")
        seconds["evaluate"] = time.time() - t0

        # merge the closest clusters; the memory restarts at zeros
        if step + 1 < num_steps:
            print("-" * 40 + " bottom-up clustering " + "-" * 40)
            t0 = time.time()
            features = bu.extract(bu.train_samples, "extract train", sharded=True)
            seconds["extract"] = time.time() - t0
            images["extract"] = bu.frames(bu.train_samples)
            t0 = time.time()
            merged = bu.get_new_train_data(labels, nums_to_merge, args.size_penalty, features=features)
            seconds["merge"] = time.time() - t0
            state["labels"] = merged.labels
            entry["merge_purity"] = purity(merged.labels, true_pids)
            entry["correct_merges"] = int(sum(true_pids[i] == true_pids[j] for i, j in merged.pairs))
            print(f"merge purity (diagnostic, true identities): {entry['merge_purity']:.3f}, "
                  f"same-identity merges {entry['correct_merges']}/{len(merged.pairs)}")
            writer.add_scalar("buc/merge_purity", entry["merge_purity"], step + 1)
        seconds["cluster"] = seconds["merge"]   # the name the five methods share
        entry["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
        entry["images"] = images
        entry["gpu_peak_mb"] = engine.gpu_peak_mb(device)   # since the run started; None on a CPU
        print(f"step {step} seconds: "
              + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "cluster")   # cluster = merge
              + f"; images: train {images['train']}, extract {images['extract']}"
              + (f"; GPU peak {entry['gpu_peak_mb']:.0f} MiB" if entry["gpu_peak_mb"] is not None else ""))
        for phase, value in seconds.items():
            writer.add_scalar(f"time/{phase}", value, step)
        # best/last bookkeeping (model_best.pth.tar, among evaluated steps) and the next checkpoint
        engine.record_step(state, entry, bu.module, vars(args), logs_dir / "model_best.pth.tar", main_rank,
                           resolved=resolved)
        save(step + 1, 0)
        steps_run += 1
        print("\n")
        if args.stop_after_steps is not None and steps_run >= args.stop_after_steps and step + 1 < last:
            print(f"stopping after {steps_run} steps as asked (--stop_after_steps); continue with --resume")
            writer.close()
            return 0

    writer.close()
    if main_rank:
        engine.write_run_results(logs_dir, state, dataset, bu, dataset_name=args.dataset,
                                 scale=args.scale or ("smoke" if args.smoke else "paper"),
                                 num_steps=last, t_start=t_start, command=command, config=vars(args))
    return 0


def evaluates(step: int, eval_every: int, num_steps: int) -> bool:
    """Whether step ``step`` is evaluated: every ``eval_every``-th step and always the last."""
    return (step + 1) % eval_every == 0 or step + 1 == num_steps


def log_metrics(writer, entry: dict, x: int) -> None:
    """The common TensorBoard tags (eval/: step-wise AP, in %) and BUC's native flavour."""
    writer.add_scalar("eval/mAP", entry["common"]["mAP"], x)
    writer.add_scalar("eval/rank1", entry["common"]["rank1"], x)
    writer.add_scalar("buc/mAP_native", entry["native"]["mAP"], x)
    writer.add_scalar("buc/rank1_native", entry["native"]["rank1"], x)


if __name__ == "__main__":
    sys.exit(main())
