"""CDSM training: the original's flags and defaults, the epoch loop top to bottom.

    python examples/train.py -b 128 -a resnet50 -d market1501 --k1 25 --iters 400 --eps 0.45 \
        --momentum 0.05 --num-instances 8 --mem-instances 4 --hard-weight 0.5 \
        --pooling-type gem --memorybank CMhybird_v5 --epochs 50 --logs-dir examples/logs/market1501/x
    python examples/train.py --config configs/market.yml --config configs/smoke.yml --data-dir DIR

``--config FILE`` (repeatable) loads YAML presets as defaults (keys = the flags' names with
underscores); flags on the command line override them. Each epoch:

  1. extract the teacher's features of the training set (sorted by path)
  2. k-reciprocal Jaccard distance (common_eval, k1, k2)
  3. DBSCAN at eps (and eps -+ eps_gap for CMhybrid_v5)
  4. reliability criterion (CMhybrid_v5)
  5. build the cluster memory from the teacher's features (core samples for v4/v5)
  6. pseudo-labelled training set (outliers dropped) and the identity sampler
  7. train --iters iterations (student, memory update with the teacher, EMA)
  8. evaluate the teacher, keep the best, write the checkpoint

Under ``torchrun --nproc_per_node=N`` [added] (N = 1 too) the student is wrapped in
DistributedDataParallel: each process extracts its share of the training set (gathered in dataset
order), process 0 clusters and sends the labels to the others, each trains on its 1/N of every
batch while the memory is updated with the whole batch on every process, and process 0 evaluates
and writes. Every epoch's results.json history entry holds its seconds per phase, images and peak
GPU memory (``engine.epoch_costs``).

The flags, presets and ``--print-config`` are in ``options.py``; the run plumbing (run folder,
set-up, resume-or-load, torchrun wrappers, best/last, checkpoints, results.json, errors) in
``cdsm/engine.py``.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from options import MAY_CHANGE, config_of, parse_args, print_config, write_config

from cdsm import datasets, engine, models
from cdsm.cluster import cluster_features, reliability
from cdsm.data import build_test_loader, build_train_loader
from cdsm.engine import epoch_seed
from cdsm.evaluation import describe, evaluate_model, extract_features
from cdsm.memory import create_memory
from cdsm.models import create_teacher
from cdsm.models.ghost_bn import set_ghost_bn
from cdsm.optim import build_optimizer
from cdsm.trainer import train_one_epoch
from cdsm.utils import distributed as du

log = logging.getLogger("cdsm.train")


def run(args, argv) -> int:
    start = time.perf_counter()
    logs_dir = Path(args.logs_dir)
    device, rank, world = engine.set_up(logs_dir, seed=args.seed, device=args.device,
                                        num_threads=args.num_threads, batch_size=args.batch_size,
                                        bn_slices=args.bn_slices)
    main_rank = rank == 0
    progress = False if args.no_progress or not main_rank else None
    log.info(f"==========\nArgs: {json.dumps(vars(args), indent=1, default=str)}\n==========")
    ckpt, ema_ckpt = engine.read_checkpoints(logs_dir, args.resume, args.resume_ema, config_of(args),
                                             MAY_CHANGE, main_rank)
    if args.memorybank_note:
        log.warning(f"WARNING: {args.memorybank_note}")
    if args.num_instances > 0 and args.batch_size % args.num_instances:
        log.warning(f"WARNING: batch size {args.batch_size} is not a multiple of --num-instances "
                    f"{args.num_instances}")
    if main_rank:
        write_config(logs_dir, args)

    # data
    dataset = datasets.create(args.dataset, args.data_dir)
    train = dataset.train  # sorted by path; features, labels and reliability are indexed by it
    pin = device.type == "cuda"
    size = (args.height, args.width, args.batch_size, args.workers, pin)
    shard = du.shard(len(train))  # this process's part of the extraction (all of it in one process)
    cluster_loader = build_test_loader(train[shard.start:shard.stop], *size)
    query_loader = build_test_loader(dataset.query, *size)
    gallery_loader = build_test_loader(dataset.gallery, *size)

    # student and mean teacher
    student = models.create(args.arch, pretrained=args.pretrained, pooling_type=args.pooling_type,
                            num_features=args.features, dropout=args.dropout)
    teacher = create_teacher(student)
    set_ghost_bn(student, args.bn_slices // world)  # each process normalises its part of the batch
    set_ghost_bn(teacher, args.bn_slices // world)
    student.to(device)
    teacher.to(device)
    if args.channels_last:
        student.to(memory_format=torch.channels_last)
        teacher.to(memory_format=torch.channels_last)
    # Adam, one parameter group per tensor as the original, fused where the device allows (optim.py)
    optimizer, scheduler = build_optimizer(student, args.lr, args.weight_decay, args.step_size)

    # a fresh run, or the state of the checkpoint it resumes
    state = engine.resume_or_load(ckpt, args.resume, ema_ckpt, args.resume_ema, student, teacher, optimizer,
                                  scheduler, t_start=start)
    writer = engine.open_writer(logs_dir, main_rank)
    if state.initial is None and main_rank:
        state.initial = engine.evaluate_initial(teacher, query_loader, gallery_loader, dataset, device,
                                                progress, writer)
    state.restore_rng()  # last: everything above may have drawn random numbers
    student_fwd, gather = engine.wrap_distributed(student, teacher, device, rank, world, args.seed)

    for epoch in range(state.start_epoch, args.epochs):
        lr = optimizer.param_groups[0]["lr"]
        t_epoch = time.perf_counter()
        # 1. teacher features of the training set
        t0 = time.perf_counter()
        features = extract_features(teacher, cluster_loader, device, f"epoch {epoch} extract", progress)
        features = du.gather_in_order(features)
        t_extract = time.perf_counter() - t0

        # 2-3. Jaccard distance, DBSCAN at eps (and eps -+ gap for the reliability criterion)
        t0 = time.perf_counter()
        v5 = args.memorybank == "CMhybrid_v5"

        def cluster(features=features, epoch=epoch, v5=v5):
            clustering = cluster_features(features.numpy(), args.eps, args.min_samples, args.k1, args.k2,
                                          args.eps_gap if v5 else None, epoch=epoch)
            # 4. reliability criterion
            rel = None
            if v5:
                rel = reliability(clustering.labels, clustering.labels_tight, clustering.labels_loose)
            return clustering, rel

        clustering, rel = du.run_on_main(cluster)  # torchrun: process 0 clusters, the others get its labels
        labels, num_clusters = clustering.labels, clustering.num_clusters

        # 5. cluster memory, from the teacher's features
        memory = create_memory(args.memorybank, student.num_features, num_clusters, temp=args.temp,
                               momentum=args.momentum, smooth=args.smooth, mem_instances=args.mem_instances,
                               hard_weight=args.hard_weight).to(device)
        memory.initialise(features.to(device), labels, clustering.core_indices,
                          rng=np.random.default_rng(epoch_seed(args.seed, epoch)))
        if v5:
            memory.set_reliability(rel.r_comp, rel.r_indep, rel.thr_comp, rel.thr_indep)
        t_cluster = time.perf_counter() - t0
        reliable = rel.num_reliable if rel is not None else None
        extra = ""
        if v5:
            tight, loose = clustering.labels_tight.max() + 1, clustering.labels_loose.max() + 1
            extra = f", tight/loose {tight}/{loose} clusters"
        log.info(f"==> epoch {epoch}: {num_clusters} clusters, {clustering.num_outliers}/{len(labels)} "
                 f"outliers, {reliable if reliable is not None else 'n/a'} reliable samples{extra}; "
                 f"lr {lr:g}")
        if num_clusters == 1:
            log.warning(f"WARNING: epoch {epoch}: the pseudo-labels collapsed to one cluster "
                        f"({len(labels) - clustering.num_outliers} of {len(labels)} images): the contrastive "
                        "loss is 0 and the model does not learn; lower --eps, or check that the training set "
                        "holds more than one person")

        # 6. pseudo-labelled training set (outliers dropped), identity sampler
        items = [(path, int(y), cam, i) for i, ((path, _, cam), y) in enumerate(zip(train, labels)) if y >= 0]
        train_loader = build_train_loader(items, args.height, args.width, args.batch_size, args.num_instances,
                                          args.iters, args.workers, seed=epoch_seed(args.seed, epoch),
                                          pad=args.pad, pin_memory=pin, rank=rank, world=world)

        # 7. train
        stats = train_one_epoch(student_fwd, teacher, memory, train_loader, optimizer, epoch, args.iters,
                                device, ema_max_decay=args.ema_decay, print_freq=args.print_freq,
                                writer=writer, progress=progress, amp=args.amp, gather=gather)
        engine.sync_bn_buffers(student, teacher, world)
        log.info(f"==> epoch {epoch}: time extract {t_extract:.1f} s, cluster {t_cluster:.1f} s, "
                 f"train {stats['seconds']:.1f} s; mean loss {stats['loss']:.3f}")

        # 8. evaluate the teacher, keep the best (the original reports the best epoch on the test set)
        record = {"epoch": epoch, "clusters": num_clusters, "outliers": clustering.num_outliers,
                  "reliable": reliable, "lr": lr, "loss": stats["loss"], "extract_s": round(t_extract, 2),
                  "cluster_s": round(t_cluster, 2), "train_s": round(stats["seconds"], 2)}
        is_best, t_eval = False, 0.0
        if not main_rank:  # process 0 evaluates, logs and writes
            scheduler.step()
            continue
        if (epoch + 1) % args.eval_step == 0 or epoch == args.epochs - 1:
            t0 = time.perf_counter()
            result = evaluate_model(teacher, query_loader, gallery_loader, dataset.query, dataset.gallery,
                                    device, progress=progress)
            metrics = result.metrics("stepwise")
            is_best = state.evaluated(metrics, epoch)
            t_eval = time.perf_counter() - t0
            record.update({"mAP": metrics["mAP"], "rank1": metrics["rank1"], "eval_s": round(t_eval, 2)})
            writer.add_scalar("eval/mAP", metrics["mAP"], epoch + 1)
            writer.add_scalar("eval/rank1", metrics["rank1"], epoch + 1)
            log.info(f" * Finished epoch {epoch:3d}  teacher {describe(result)}  best mAP "
                     f"{state.best['mAP']:.1f} (epoch {state.best_epoch}){' *' if is_best else ''}  "
                     f"(evaluate {t_eval:.1f} s)")
        record["epoch_s"] = round(time.perf_counter() - t_epoch, 2)
        # the cost keys the five methods share: seconds per phase, images, peak GPU memory
        record.update(engine.epoch_costs(
            {"extract": t_extract, "cluster": t_cluster, "train": stats["seconds"], "evaluate": t_eval},
            train_images=args.iters * args.batch_size, extract_images=len(train), device=device))
        state.history.append(record)
        engine.log_epoch(writer, record)
        scheduler.step()
        engine.save_epoch(logs_dir, epoch, state, student, teacher, optimizer, scheduler, memory,
                          num_clusters, labels, config_of(args), is_best)
    writer.close()
    if not main_rank:
        return 0
    engine.write_final_results(logs_dir, state, dataset=args.dataset, scale=args.scale, epochs=args.epochs,
                               command="python examples/train.py " + " ".join(argv), config=config_of(args),
                               memorybank=args.memorybank)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.print_config:  # nothing read, nothing written
        print_config(args)
        return 0
    return engine.guarded_main(args.logs_dir, args.resume, args.dataset, lambda: run(args, argv))


if __name__ == "__main__":
    sys.exit(main())
