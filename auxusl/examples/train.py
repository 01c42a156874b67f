"""AuxUSL training (the original's ``scripts/main.py`` + engine ``usl_MTCluster_base``).

    python examples/train.py --config-file configs/USL_MTCluster.yml [KEY VALUE ...]
    python examples/train.py --config-file configs/USL_MTCluster_Duke.yml DATASETS.DIR /data
    python examples/train.py --config-file configs/USL_MTCluster.yml RESUME log/x/model_mAP_best.pth.tar \
        TEST.EVAL_ONLY True

The configuration is the yacs tree of ``auxusl/config/defaults.py``, then the YAML file (with
``_BASE_``), then the ``KEY VALUE`` pairs; the resolved tree goes to ``OUTPUT_DIR/config.yaml``.
Each epoch:

  1. clustering features: one random clip per training tracklet, teacher, raw features
  2. Jaccard distance (k1, k2), + CCE_LAMBDA * SCP, * STS                (auxiliary information)
  3. eps, once at the first epoch of the process (adaptive or CLUSTER.EPS)
  4. DBSCAN, or ICDBSCAN with the time-overlap cannot-links (TOC)
  5. pseudo-labelled tracklets (noise dropped), cluster centroids
  6. RLSCE neighbour map; classifier rows of student and teacher <- normalised centroids
  7. DTI: round(ITERS_CLUSTER_MULTIPLIER * #clusters) iterations (at most MAX_ITERS); a new optimizer
  8. train (hard ID + triplet/WATL, soft CE + soft triplet; EMA teacher)
  9. every |SAVE_STEP| epochs and at the end: evaluate the teacher (test-time TOC, SCP, STS)

Each epoch's history entry (results.json) has the phase seconds (extract, cluster, train,
evaluate), the frames the network saw (training clips, clustering clips) and the peak GPU memory.

The command line is in ``options.py``; the run plumbing (set-up, resume-or-load, eval-only, the
torchrun wrappers, best/last, checkpoints, results.json, errors) in ``auxusl/engine.py``; the
auxiliary information a run reads in ``auxusl/auxinfo/from_config.py``; the evaluation in
``auxusl/evaluation.py``.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from options import setup

from auxusl import engine
from auxusl.auxinfo.from_config import load_train_aux
from auxusl.cluster import ClusterState, adaptive_eps, clustering_distance, neighbour_map, run_clustering
from auxusl.data import FrameReader, build_train_loader
from auxusl.errors import AuxUSLError, ConfigError
from auxusl.evaluation import Evaluator, cluster_features
from auxusl.losses import SoftEntropy, SoftTripletLoss, build_id_loss, build_triplet_loss
from auxusl.trainer import train_one_epoch
from auxusl.utils import distributed as du
from auxusl.utils import get_rng_state, set_rng_state
from auxusl.utils.runfiles import atomic_write

log = logging.getLogger("auxusl.train")


def cluster(feats, cluster_state, cfg, scp, sts, cannot, epoch):
    """Steps 2-4: (pseudo-labels, cluster state) of the clustering samples."""
    c = cfg.CLUSTER
    # 2. Jaccard distance (+ SCP, * STS); once eps is known, DBSCAN needs only the pairs within it
    cutoff = None
    if cluster_state is not None and not cluster_state.constrained and cluster_state.eps < 1.0:
        cutoff = cluster_state.eps
    try:
        D = clustering_distance(feats, c.K1, c.K2, scp=scp, scp_lambda=c.CCE_LAMBDA, sts=sts, cutoff=cutoff)
    except ValueError as exc:
        raise AuxUSLError(f"epoch {epoch}: the clustering features are unusable ({exc})") from None
    if c.ICDBSCAN_OPTION and not isinstance(D, np.ndarray):
        from auxusl.cluster import densify

        D = densify(D)
    # 3. eps and the clustering object, once, at the first epoch of the process
    if cluster_state is None:
        try:
            eps = adaptive_eps(D, c.ADAPTIVE_RHO) if c.ADAPTIVE else float(c.EPS)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        cluster_state = ClusterState(eps, c.MIN_SAMPLES, bool(c.ICDBSCAN_OPTION), c.ICDBSCAN_RELAXED, cannot)
        how = "adaptive" if c.ADAPTIVE else "CLUSTER.EPS"
        log.info(f"eps for cluster: {eps:.3f} ({how}), kept for every later epoch")
    # 4. (IC)DBSCAN
    return run_clustering(D, cluster_state, epoch), cluster_state


def run(cfg, argv, resumed=None) -> int:
    start, load_start = time.perf_counter(), os.getloadavg()
    out_dir = Path(cfg.OUTPUT_DIR)
    device, rank, world, progress = engine.set_up(cfg, argv)
    main_rank = rank == 0

    # data, models
    dataset = engine.build_dataset(cfg)
    train = dataset.train  # sorted: the order of clustering samples and auxiliary matrices
    train_tf, test_tf = engine.build_transforms(cfg)
    reader = FrameReader(cache=cfg.DATALOADER.CACHE_IMAGES)
    multi = max(1, cfg.DATALOADER.CLUSTER_SAMPLE_MULTI)
    num_classes = len(train) * multi  # the original: len(train), an upper bound of #clusters for multi = 1
    student, teacher = engine.build_student_and_teacher(cfg, num_classes, device)

    # a fresh run, the state of the checkpoint it resumes, or the checkpoint to evaluate
    state = engine.resume_or_load(cfg, resumed, student, teacher, t_start=start)
    evaluator = Evaluator(cfg, dataset, test_tf, reader, device, progress)
    if cfg.TEST.EVAL_ONLY:
        if main_rank:
            engine.evaluate_only(cfg, evaluator, teacher, out_dir)
        return 0

    scp, sts, cannot = load_train_aux(cfg, dataset, multi)
    writer = engine.open_writer(out_dir, main_rank)
    if state.initial is None and main_rank:
        engine.evaluate_initial(state, evaluator, teacher, writer)
    state.restore_rng()  # last: everything above may have drawn random numbers
    student_fwd, teacher_fwd, multi_gpu, gather = engine.wrap_distributed(cfg, student, teacher, device,
                                                                          world)

    dl = cfg.DATALOADER
    for epoch in range(state.start_epoch, cfg.OPTIM.EPOCHS):
        epoch_start = time.perf_counter()
        # 1. clustering features (teacher, one random clip per tracklet, raw features)
        t0 = time.perf_counter()
        du.sync_rng(get_rng_state, set_rng_state)  # every rank draws rank 0's clips
        part = du.shard(len(train) * multi) if world > 1 else None
        feats, sampled = cluster_features(teacher, train, dl.CLUSTER_SEQ_LEN, test_tf, reader, device,
                                          multi, dl.CLUSTER_BATCH_SIZE * dl.CLUSTER_SEQ_LEN, dl.NUM_WORKERS,
                                          progress, part=part)
        if world > 1:  # the parts in dataset order
            feats = du.gather_in_order(torch.from_numpy(feats)).numpy()
        t_extract = time.perf_counter() - t0

        # 2-4. Jaccard (+ SCP, * STS), eps, (IC)DBSCAN: process 0 clusters; its labels and cluster
        # state (eps, ICDBSCAN sets) go to every process
        t0 = time.perf_counter()
        labels, state.cluster_state = engine.run_on_main(
            lambda f=feats, e=epoch: cluster(f, state.cluster_state, cfg, scp, sts, cannot, e),
            world, main_rank)
        num_clusters = int(labels.max()) + 1
        num_outliers = int((labels < 0).sum())
        if num_clusters == 1:
            log.warning(
                f"WARNING: epoch {epoch + 1}: the pseudo-labels collapsed to one cluster "
                f"({len(labels) - num_outliers} of {len(labels)} training tracklets, the rest outliers): "
                "the identity losses learn nothing; lower CLUSTER.EPS / CLUSTER.ADAPTIVE_RHO"
            )

        # 5. pseudo-labelled tracklets and centroids (raw features)
        pad = max(0, dl.SAMPLE_CONSTRAINT_EXT_SIZE - dl.CLUSTER_SEQ_LEN) // 2
        pseudo, members = [], collections.defaultdict(list)
        for s, label in enumerate(labels.tolist()):
            if label < 0:
                continue
            paths, _, cam = train[s // multi]
            if dl.SAMPLE_CONSTRAINT:
                lo = max(min(sampled[s]) - pad, 0)
                hi = min(max(sampled[s]) + pad, len(paths) - 1)
                paths = paths[lo : hi + 1]
            pseudo.append((paths, label, cam))
            members[label].append(s)
        centroids = np.stack([feats[members[k]].mean(0) for k in range(num_clusters)])

        # 6. RLSCE neighbours; classifier rows of both networks <- normalised centroids
        losses = cfg.MODEL.LOSSES
        nmap = None
        if losses.ID_OPTION == 3:
            nmap = neighbour_map(centroids, losses.ID_K, cfg.CLUSTER.K1, cfg.CLUSTER.K2)
        with torch.no_grad():
            w = F.normalize(torch.from_numpy(centroids).float(), dim=1).to(device)
            student.classifier.weight[:num_clusters].copy_(w)
            teacher.classifier.weight[:num_clusters].copy_(w)

        # 7. DTI, loader, optimizer
        dti = dl.ITERS_CLUSTER_MULTIPLIER
        num_iters = max(1, int(round(dti * num_clusters) if dti > 0 else dl.ITERS))
        capped = 0 < dl.MAX_ITERS < num_iters  # the rehearsal's cap
        num_iters = dl.MAX_ITERS if capped else num_iters
        loader = build_train_loader(pseudo, dl.TRAIN_SEQ_LEN, train_tf, dl.TRAIN_BATCH_SIZE, dl.NUM_INSTANCE,
                                    num_iters, dl.NUM_WORKERS, reader, pin_memory=device.type == "cuda",
                                    rank=rank, world=world,
                                    sync=lambda: du.sync_rng(get_rng_state, set_rng_state))
        if main_rank:
            # written as the original (a pickle), never read back by this code
            atomic_write(out_dir / f"cluster_result_{epoch:03}.pickle",
                         lambda f, obj=pseudo: pickle.dump(obj, f))
        optimizer = engine.build_optimizer(cfg, student)
        lr = engine.single_step_lr(cfg, epoch)
        t_cluster = time.perf_counter() - t0
        log.info(
            f"==> epoch {epoch + 1}: {num_clusters} clusters, {num_outliers}/{len(labels)} outliers, "
            f"{num_iters} iterations ({'MAX_ITERS' if capped else 'DTI'}); lr {cfg.OPTIM.LR:g} "
            f"(single_step computes {lr:g}, not applied); "
            f"extract {t_extract:.1f} s, cluster {t_cluster:.1f} s"
        )

        # 8. train
        criteria = {
            "id": build_id_loss(losses.ID_OPTION, num_clusters, losses.CE.EPSILON, losses.ID_K, nmap),
            "tri": build_triplet_loss(losses.TRI_OPTION, losses.TRI_MARGIN, losses.TRI_LAMBDA),
            "ce_soft": SoftEntropy(),
            "tri_soft": SoftTripletLoss(),
        }
        mt = cfg.MUTUAL_TEACH
        stats = train_one_epoch(student_fwd, teacher_fwd, loader, optimizer, criteria, num_clusters, epoch,
                                num_iters, device, mt.CE_SOFT_WRIGHT, mt.TRI_SOFT_WRIGHT, mt.ALPHA, multi_gpu,
                                cfg.OPTIM.FORWARD_BATCH_SIZE, cfg.PRINT_PERIOD, writer, progress,
                                amp=str(cfg.MODEL.AMP).lower(), gather=gather)
        engine.sync_bn_buffers(student, teacher, world)

        # 9. evaluate the teacher, keep the best (the original selects on the test set)
        record = {"epoch": epoch + 1, "eps": state.cluster_state.eps, "clusters": num_clusters,
                  "outliers": num_outliers, "iters": num_iters, "loss": stats["loss"], "prec": stats["prec"],
                  "extract_s": round(t_extract, 2), "cluster_s": round(t_cluster, 2),
                  "train_s": round(stats["seconds"], 2),
                  "seconds": {"extract": round(t_extract, 3), "cluster": round(t_cluster, 3),
                              "train": round(stats["seconds"], 3), "evaluate": 0.0},
                  # frames: training clips (the global batch), distinct frames of the clustering clips
                  "images": {"train": num_iters * dl.TRAIN_BATCH_SIZE * dl.TRAIN_SEQ_LEN,
                             "extract": sum(map(len, sampled))}}
        is_best = is_best_top1 = False
        if not main_rank:  # rank 0 evaluates, logs and writes
            continue
        if engine.eval_epochs(cfg, epoch):
            t0 = time.perf_counter()
            out = evaluator(teacher)
            metrics, is_best, is_best_top1 = state.evaluated(out, epoch)
            t_eval = time.perf_counter() - t0
            record.update(mAP=metrics["mAP"], rank1=metrics["rank1"], eval_s=round(t_eval, 2))
            record["seconds"]["evaluate"] = round(t_eval, 3)
            if out["ablation"]:
                record["ablation"] = out["ablation"]
            engine.log_evaluation(epoch, out, state, is_best, is_best_top1, writer)
        record["gpu_peak_mb"] = engine.gpu_peak_mb(device)
        state.history.append(record)
        engine.log_epoch(writer, record, cfg.OPTIM.LR, time.perf_counter() - epoch_start)
        engine.save_epoch(cfg, out_dir, epoch, state, student, teacher, optimizer, labels, is_best,
                          is_best_top1)
        phases = ", ".join(f"{k} {v:.1f}" for k, v in record["seconds"].items())
        peak = record["gpu_peak_mb"]
        log.info(
            f"epoch {epoch + 1} took {time.perf_counter() - epoch_start:.1f} s ({phases} s; frames: "
            f"train {record['images']['train']}, extract {record['images']['extract']}"
            f"{'' if peak is None else f'; GPU peak {peak:.0f} MB'}); eta "
            f"{(time.perf_counter() - epoch_start) * (cfg.OPTIM.EPOCHS - epoch - 1):.0f} s"
        )
    writer.close()
    if main_rank:
        engine.write_final_results(cfg, out_dir, state, argv, load_start)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg, args = setup(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:  # the resolved configuration; nothing read or written
        sys.stdout.write(cfg.dump())
        return 0
    return engine.guarded_main(cfg, args, lambda resumed: run(cfg, argv, resumed))


if __name__ == "__main__":
    sys.exit(main())
