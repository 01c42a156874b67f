"""3C training: the original's flags and defaults (``CCC/configs/config.py``, examples/options.py),
the epoch loop top to bottom. One script for the three entry points of the original (``--cluster``):

    hdc     CCC/main.py         HDC, harmonic discrepancy clustering (3C)
    dbscan  CCC/main_dbscan.py  DBSCAN on the Jaccard distance every epoch
    kmeans  CCC/main_kmeans.py  k-means on the features

    python examples/train.py --cluster hdc --dataset market1501 --height 256 --width 128 \\
        --num-clusters 750 --iters 200 --num-epochs 60 --warmup-iters 10 --warmup-with-dbscan \\
        --dbscan-eps 0.6 --arch resnet50 --resnet-pretrained V1 --pooling-type gem --hdc-outlier \\
        --hdc-centroids --hdc-init k-means++2 --cm-mode hd_camera --loss-with-camera \\
        --root-dir $HOME/Dataset --log-dir logs/log
    python examples/train.py --config configs/hdc/market.yml --config configs/smoke.yml ...

(examples/main.py, main_dbscan.py and main_kmeans.py take the README's commands as written.)
``--config FILE`` (repeatable) loads YAML presets as defaults (keys = the flags' names with
underscores); flags on the command line override them. Each epoch:

  1. extract the features of the training set (eval mode)
  2. pseudo-labels: during the warm-up (``--warmup-with-dbscan``, epochs < ``--warmup-iters``) and
     in the DBSCAN variant, Jaccard + DBSCAN; otherwise Jaccard + HDC (or k-means), then the
     removal of clusters smaller than ``--cluster-min-instances``
  3. the cluster memory = L2norm(centroids); outliers leave the training set
  4. train ``--iters`` iterations (ClusterNCE, CIE weighting, the ``--cm-mode`` memory update)
  5. step the learning rate (WarmupMultiStepLR)
  6. evaluate after epoch 1 and every ``--eval-step-epoch`` epochs (and after the last one),
     keep the best (what 3C reports), write the checkpoint; the epoch's history entry (results.json)
     carries the seconds and images of each phase

The plumbing around the loop (run-folder guard, set-up, resume-or-load, the torchrun wrappers,
best/last bookkeeping, checkpoints, results.json, error handling) is ccc/engine.py.
Multi-GPU [added]: ``torchrun --nproc_per_node=N examples/train.py ...`` trains with
DistributedDataParallel (nccl on CUDA, one GPU per process; gloo on the CPU): rank 0 clusters,
evaluates and writes; every rank trains its slice of each global batch (ccc/engine.py). A single
process (no torchrun) is unchanged.
"""
from __future__ import annotations

import logging
import os
import sys
import time

import numpy as np
import torch
from options import MAY_CHANGE, TARGET, config_of, parse_args, print_config

from ccc import datasets, engine, models
from ccc.cluster import dbscan_labels, jaccard_distance, kmeans_labels, member_means, remove_small_clusters
from ccc.data import build_test_loader, build_train_loader
from ccc.engine import epoch_seed
from ccc.errors import ClusteringError, NoClusterError
from ccc.evaluation import NATIVE_AP, describe, evaluate_model, extract_features
from ccc.hdc import HDC
from ccc.memory import create_memory
from ccc.models.ghost_bn import set_ghost_bn
from ccc.trainer import train_one_epoch
from ccc.utils import distributed as du
from ccc.utils.logging import tensorboard_writer
from ccc.utils.lr_scheduler import build_scheduler

log = logging.getLogger("ccc.train")


# ------------------------------------------------------------------------- model and clustering
def fused_adam_supported(params) -> bool:
    """torch's fused Adam kernel: floating-point tensors on the CPU or CUDA."""
    return all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)


def build_optimizer(model, args, fused: bool | None = None):
    # one parameter group per tensor, as the original; the same Adam update through torch's fused
    # kernel (``fused=None``: where supported) instead of torch's default one [README, Deviations 15]
    params = [p for p in model.parameters() if p.requires_grad]
    if fused is None:
        fused = fused_adam_supported(params)
    optimizer = torch.optim.Adam([{"params": [p]} for p in params], lr=args.lr,
                                 weight_decay=args.lr_weight_decay, fused=fused or None)
    scheduler = build_scheduler(optimizer, args.warmup_version, args.warmup_iters, args.warmup_factor,
                                args.warmup_lr_factor, args.lr_steps, args.lr_gamma)
    return optimizer, scheduler


def uses_dbscan(args, epoch: int) -> bool:
    return args.cluster == "dbscan" or (args.warmup_with_dbscan and epoch < args.warmup_iters)


def make_hdc(args) -> HDC:
    return HDC(args.num_clusters, max_iter=args.hdc_max_iter, init=args.hdc_init,
               normalize_centroid=args.hdc_normalize, similarity=args.hdc_similarity,
               threshold=args.threshold, num_threads=args.num_threads or os.cpu_count())


def pseudo_labels(features: np.ndarray, args, epoch: int):
    """The epoch's clustering: (labels with -1 = outlier, centroids C' x D, what was done)."""
    n = len(features)
    threads = args.num_threads or os.cpu_count()
    if uses_dbscan(args, epoch):
        # only the pairs DBSCAN can use (d <= eps) are kept: the same labels, a fraction of the cost
        dist = jaccard_distance(features, args.jaccard_k1, args.jaccard_k2, num_threads=threads,
                                cutoff=args.dbscan_eps)
        labels = dbscan_labels(dist, args.dbscan_eps, args.cluster_min_instances,
                               n_jobs=args.num_workers or None, epoch=epoch,
                               full_distance=lambda: jaccard_distance(features, args.jaccard_k1,
                                                                      args.jaccard_k2, num_threads=threads))
        C = int(labels.max()) + 1
        kind = "DBSCAN warm-up" if args.cluster != "dbscan" else "DBSCAN"
        return labels, member_means(features, labels, C), {"method": kind}
    if args.cluster == "kmeans":
        labels, centers = kmeans_labels(features, args.num_clusters, epoch_seed(args.seed, epoch, "cluster"))
        labels, centroids, C = remove_small_clusters(labels, centers, args.cluster_min_instances)
        info = {"method": "k-means", "removed_small": args.num_clusters - C}
    else:
        hdc = make_hdc(args)
        dist = None if args.no_jaccard else jaccard_distance(features, args.jaccard_k1, args.jaccard_k2,
                                                             num_threads=threads)   # sparse
        hdc.fit(features, dist, outlier=args.hdc_outlier, random_state=epoch_seed(args.seed, epoch,
                                                                                  "cluster"),
                inplace=True)
        del dist
        labels, centroids, C = remove_small_clusters(hdc.labels_, hdc.cluster_centers_,
                                                     args.cluster_min_instances)
        if C and not args.hdc_centroids:
            centroids = member_means(features, labels, C)
        info = {"method": "HDC", "hdc_iterations": hdc.n_iter_, "hdc_shift": hdc.shifts_[-1],
                "hdc_relocations": hdc.relocations_, "hdc_pod_outliers": int((hdc.labels_pod_ < 0).sum()),
                "removed_small": int(len(np.unique(hdc.labels_[hdc.labels_ >= 0]))) - C}
        if hdc.nan_centroids_:
            log.warning(f"WARNING: {hdc.nan_centroids_} HDC centroid(s) have no member (only possible with "
                        "--threshold or --hdc-init random): as in the original they are NaN, which makes "
                        "every membership 0 in the following iteration")
    if C == 0:
        what = "k-means" if args.cluster == "kmeans" else "HDC"
        raise NoClusterError(
            f"{what} (K {args.num_clusters}) left no cluster at epoch {epoch}: every one of the {n} training "
            f"images is an outlier or in a cluster smaller than --cluster-min-instances "
            f"{args.cluster_min_instances}; lower --cluster-min-instances or --num-clusters"
            + (", or drop --hdc-outlier / raise --threshold" if what == "HDC" else ""))
    if not np.isfinite(centroids).all():
        raise ClusteringError(f"some HDC centroids are undefined at epoch {epoch} (a cluster without a "
                              "member inside the POD threshold): omit --hdc-centroids or raise --threshold")
    return labels, centroids, info


def check_cluster_count(args, n_train: int) -> None:
    """--num-clusters against the training set, before anything is trained."""
    if args.cluster == "dbscan" or (args.warmup_with_dbscan and args.warmup_iters >= args.num_epochs):
        return
    if args.num_clusters > n_train:
        raise ClusteringError(f"--num-clusters {args.num_clusters} is larger than the number of training "
                              f"images ({n_train}): {args.cluster} cannot form that many clusters; use at "
                              f"most {n_train} (3C uses about the number of identities: 750 Market, 1000 "
                              "MSMT17/VeRi)")
    if args.cluster == "hdc" and args.num_clusters < 2:
        raise ClusteringError("HDC needs --num-clusters >= 2")


# ------------------------------------------------------------------------------- the epoch loop
def run(args, argv, ckpt=None) -> int:
    """The run; ``ckpt``: the checkpoint of --resume, already loaded and checked by preflight."""
    started = time.perf_counter()
    log_dir, ckpt_dir = engine.run_dirs(args.log_dir, args.ckpt_dir)
    device, rank, world = engine.start_run(
        log_dir, ckpt_dir, seed=args.seed, device=args.device, num_threads=args.num_threads, notes=args.notes,
        settings=vars(args), config=config_of(args), batch_size=args.batch_size,
        num_instances=args.num_instances, bn_slices=args.bn_slices)
    main_rank = rank == 0
    progress = False if args.no_progress or not main_rank else None

    # data
    dataset = datasets.create(args.dataset, args.root_dir)
    train = dataset.train  # sorted by path; features and labels are indexed by it
    check_cluster_count(args, len(train))
    pin = device.type == "cuda"
    size = (args.height, args.width, args.batch_size, args.num_workers, pin)
    shard = [train[i] for i in du.shard(len(train))]   # world > 1: this rank's part, gathered in order
    cluster_loader = build_test_loader(shard, *size)
    query_loader = build_test_loader(dataset.query, *size)
    gallery_loader = build_test_loader(dataset.gallery, *size)

    def evaluate():
        return evaluate_model(model, query_loader, gallery_loader, dataset.query, dataset.gallery, device,
                              eval_dist=args.eval_dist, rerank=args.rerank, progress=progress)

    # model, optimizer, schedule; a fresh run or the state of --resume
    model = models.create(args.arch, pretrained=args.pretrained, version=args.resnet_pretrained,
                          pooling_type=args.pooling_type)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    set_ghost_bn(model, args.bn_slices // world)   # 3C's DataParallel BN statistics (1: plain BN)
    optimizer, scheduler = build_optimizer(model, args)
    if args.resume and ckpt is None:
        ckpt = engine.preflight(args.resume, log_dir, ckpt_dir, config_of(args), MAY_CHANGE)
    state = engine.resume_or_load(ckpt if args.resume else None, args.resume, model, optimizer, scheduler,
                                  device, temp=args.cm_temperature, momentum=args.cm_momentum,
                                  started=started)

    writer = tensorboard_writer(log_dir) if main_rank else None
    if state.initial is None and main_rank:
        t0 = time.perf_counter()
        result = evaluate()
        state.initial = result.metrics("stepwise")
        log.info(f"==> initial model (before training): {describe(result)}  "
                 f"({time.perf_counter() - t0:.1f} s)")
        writer.add_scalar("eval/mAP", state.initial["mAP"], 0)
        writer.add_scalar("eval/rank1", state.initial["rank1"], 0)
    state.restore_rng()  # last: everything above may have drawn random numbers
    model_fwd, gather = engine.wrap_distributed(model, device, world)

    for epoch in range(state.start_epoch, args.num_epochs):
        lr = optimizer.param_groups[0]["lr"]
        # 1. features of the training set (under torchrun: rank 0's RNG states everywhere)
        engine.sync_epoch_rng(world, rank, epoch_seed(args.seed, epoch, "augment"))
        t0 = time.perf_counter()
        features = extract_features(model, cluster_loader, device, f"epoch {epoch} extract", progress)
        features = du.gather_in_order(features).numpy()   # the shards in dataset order
        t_extract = time.perf_counter() - t0

        # 2. pseudo-labels (DBSCAN warm-up / DBSCAN, HDC or k-means), small clusters removed
        t0 = time.perf_counter()
        labels, centroids, info = engine.cluster_on_rank0(pseudo_labels, world, rank, features, args, epoch)
        num_clusters, num_outliers = len(centroids), int((labels < 0).sum())
        if num_clusters == 1 and main_rank:
            log.warning(f"WARNING: epoch {epoch}: the pseudo-labels collapsed to ONE cluster "
                        f"({len(labels) - num_outliers} images, {num_outliers} outliers): the contrastive "
                        "loss against a one-entry memory is 0 and nothing is learnt this epoch; "
                        + ("raise --num-clusters" if info["method"] in ("HDC", "k-means")
                           else "lower --dbscan-eps"))

        # 3. cluster memory = L2norm(centroids); outliers leave the training set
        memory = create_memory(args.cm_mode, model.num_features, num_clusters, temp=args.cm_temperature,
                               momentum=args.cm_momentum).to(device)
        memory.initialise(torch.from_numpy(centroids))
        items = [(path, int(y), cam, i) for i, ((path, _, cam), y) in enumerate(zip(train, labels)) if y >= 0]
        train_loader = build_train_loader(items, args.height, args.width, args.batch_size, args.num_instances,
                                          args.iters, args.num_workers, seed=epoch_seed(args.seed,
                                                                                        epoch, "sampler"),
                                          pad=args.pad, pin_memory=pin, use_cameras=not args.no_cam,
                                          rank=rank, world=world)
        t_cluster = time.perf_counter() - t0
        extra = ""
        if info["method"] == "HDC":
            extra = (f" (HDC: {info['hdc_iterations']} iterations, last shift {info['hdc_shift']:.3g}, "
                     f"{info['hdc_relocations']} relocation passes, {info['hdc_pod_outliers']} peripheral, "
                     f"{info['removed_small']} clusters below {args.cluster_min_instances} removed)")
        elif info["method"] == "k-means":
            extra = f" ({info['removed_small']} clusters below {args.cluster_min_instances} removed)"
        log.info(f"==> epoch {epoch}: {info['method']}: {num_clusters} clusters, "
                 f"{num_outliers}/{len(labels)} outliers{extra}; lr {lr:.3g}")

        # 4. train
        stats = train_one_epoch(model_fwd, memory, train_loader, optimizer, epoch, args.iters, device,
                                reweight=args.loss_with_camera, print_freq=args.print_freq, writer=writer,
                                progress=progress, amp=args.amp, channels_last=args.channels_last,
                                gather=gather)
        log.info(f"==> epoch {epoch}: time extract {t_extract:.1f} s ({len(features)} images), cluster "
                 f"{t_cluster:.1f} s, train {stats['seconds']:.1f} s ({stats['images']} images); mean loss "
                 f"{stats['loss']:.3f}")
        # 5. learning rate (3C steps it at the end of each epoch's training)
        scheduler.step()
        if world > 1:   # rank 0's BN running statistics (DataParallel's first replica) on every rank
            du.broadcast_buffers(model)
        if not main_rank:   # rank 0 evaluates, logs and writes
            continue

        # 6. evaluate (3C: after epoch 1 and every --eval-step-epoch epochs; best-on-test) and the last
        record = {"epoch": epoch, "clustering": info["method"], "clusters": num_clusters,
                  "outliers": num_outliers, "lr": lr, "loss": stats["loss"], "extract_s": round(t_extract, 2),
                  "cluster_s": round(t_cluster, 2), "train_s": round(stats["seconds"], 2)}
        record.update({k: v for k, v in info.items() if k.startswith("hdc_")})
        scheduled = (epoch + 1 >= args.eval_start_epoch
                     and ((epoch + 1) % args.eval_step_epoch == 0 or epoch == 0))
        is_best, t_eval = False, 0.0
        if scheduled or epoch == args.num_epochs - 1:
            t0 = time.perf_counter()
            result = evaluate()
            metrics = result.metrics("stepwise")
            t_eval = time.perf_counter() - t0
            is_best = state.evaluated(metrics, epoch, scheduled)
            record.update({"mAP": metrics["mAP"], "rank1": metrics["rank1"], "scheduled_eval": scheduled,
                           "eval_s": round(t_eval, 2)})
            best_txt = (f"best mAP {state.best['mAP']:.1f} (epoch {state.best_epoch})" if state.best
                        else "no scheduled evaluation yet")
            log.info(f" * Finished epoch {epoch:3d}  {describe(result)}  {best_txt}{' *' if is_best else ''} "
                     f"(evaluation {t_eval:.1f} s)")
        # the costs of the epoch's phases (results.json, TensorBoard time/<phase>)
        record.update(engine.epoch_costs(device, {"extract": t_extract, "cluster": t_cluster,
                                                  "train": stats["seconds"], "evaluate": t_eval},
                                         train_images=stats["images"], extract_images=len(features)))
        state.history.append(record)
        engine.log_epoch(writer, record)
        engine.save_epoch(ckpt_dir, epoch, state, model, optimizer, scheduler, memory, labels,
                          config_of(args), is_best=is_best,
                          snapshot=args.eval_and_ckpt and scheduled and epoch > 0)
    if not main_rank:
        return 0
    writer.close()
    engine.write_final_results(
        log_dir, state, num_epochs=args.num_epochs, native_ap=NATIVE_AP, method="ccc", variant=args.cluster,
        target=TARGET[args.dataset], scale=args.scale, command="python examples/train.py " + " ".join(argv),
        config=config_of(args),
        native_note="3C computes step-wise AP (sklearn >= 0.19 average_precision_score), the common "
                    "flavour: native = common")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.print_config:
        return print_config(args)
    return engine.guarded_main(
        lambda: engine.preflight(args.resume, args.log_dir, args.ckpt_dir, config_of(args), MAY_CHANGE),
        lambda ckpt: run(args, argv, ckpt), log_dir=args.log_dir, append=bool(args.resume),
        dataset=args.dataset, root_dir=args.root_dir)


if __name__ == "__main__":
    sys.exit(main())
