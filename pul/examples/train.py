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

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from options import PLUMBING, config_yaml, parse_args, run_config  # noqa: E402

import pul  # noqa: E402,F401  (sets KERAS_BACKEND=tensorflow before keras is imported)
from pul.engine import (  # noqa: E402
    BASELINE_KEYS,
    PhaseTimer,
    check_baseline_given,
    check_run_folder,
    checkpoint_config,
    collapse_warning,
    evaluate_target,
    finish_baseline,
    given_baseline,
    gpu_peak_mb,
    last_record,
    load_dataset,
    log_epoch,
    log_eval,
    prepare_target,
    pseudo_label_quality,
    replicated,
    resume_or_load,
    resume_point,
    reusable_baseline,
    run_in_logs_dir,
    save_inference_copy,
    save_pul_state,
    set_up,
    write_pul_results,
)

HERE = Path(__file__).resolve().parent


# ============================================================================ stage 0: baseline
def run_baseline(args, folder: Path, dataset_name: str, data_root: str, scalars=None) -> dict:
    """Fine-tunes the backbone + fc8 on a labelled dataset (baseline/train.py); writes folder/0.keras
    and folder/baseline.json. Reuses a complete baseline with the same settings; resumes a stopped one."""
    from pul.checkpoint import RunState, save_model
    from pul.data import BatchStream, steps_per_epoch
    from pul.model import add_classifier, build_backbone, compile_classifier, load_model, resolve_pretrained
    from pul.preprocessing import load_images
    from pul.selection import one_hot
    from pul.training import fit

    folder.mkdir(parents=True, exist_ok=True)
    settings = {k: getattr(args, k) for k in BASELINE_KEYS}
    settings["source"] = dataset_name
    summary = reusable_baseline(folder, settings, dataset_name)
    if summary is not None:
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
    steps = steps_per_epoch(len(images), args.batch_size, args.max_steps)

    state, last = RunState(folder, "state"), folder / "last.keras"
    strategy = replicated(args.mirror_cpus)
    start_epoch, wall_before = 0, 0.0
    with strategy.scope():
        st = resume_or_load(state, args.resume, "baseline", last=last)
        if st is not None:
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
        save_model(model, last, checkpoint_config(run_config(args), "baseline", 0))
        state.save({"stage": "baseline", "epoch_done": epoch, "settings": settings, "config": args._config,
                    "wall_seconds": wall_before + time.time() - t_start})
        if scalars is not None:
            log_epoch(scalars, epoch, "baseline", logs, model)

    fit(model, stream, args.baseline_epochs, steps, start_epoch, seed_parts=(args.seed, 0, 0),
        on_epoch_done=epoch_done, where=f"the baseline on {dataset_name}",
        verbose=0 if args.no_progress else None)
    return finish_baseline(model, folder, ds, size, args.eval_batch_size, not args.no_progress, settings,
                           num_classes, wall_before, t_start, state, last,
                           config=checkpoint_config(run_config(args), "baseline", 0))


# ============================================================================ PUL
def run_pul(args, logs: Path, baseline_path: Path, baseline_summary: dict | None, scalars,
            t_process: float, target: dict) -> dict:
    """PUL/unsupervised.py (and semi-supervised.py) for iterations 1..END; writes results.json."""
    from pul.checkpoint import RunState, load_arrays, save_arrays, save_model
    from pul.data import BatchStream, steps_per_epoch
    from pul.evaluation import extract_features
    from pul.model import add_classifier, compile_classifier, feature_model, load_model
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
    strategy = replicated(args.mirror_cpus)
    ckpt_dir = logs / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.keras"
    state = RunState(logs, "state")
    st = resume_or_load(state, args.resume, "pul", expect={"baseline": str(baseline_path), "K": K})

    def evaluate(model, what):
        return evaluate_target(model, ds, size, args.eval_batch_size, not args.no_progress, eval_cache, what)

    # ---- iteration 0: the source baseline on the target ("initial" = direct transfer)
    with strategy.scope():
        baseline = load_model(baseline_path, compile=False)
    if st is None:
        initial, history = evaluate(baseline, "baseline on the target (direct transfer)"), []
        log_eval(scalars, 0, initial)
    else:
        initial, history = st["initial"], st["history"]
    wall_before = float(st.get("wall_seconds", 0.0)) if st else 0.0

    def save_state(t, epoch_done, finished, current):
        save_pul_state(state, t, epoch_done, finished, current, baseline_path, K, initial, history,
                       args._config, wall_before + time.time() - t_start)

    start_t, inside = resume_point(st)  # after the last finished iteration, or inside the interrupted one
    previous = baseline if start_t == 1 else None   # the model that extracts iteration t's features

    for t in range(start_t, args.iterations + 1):
        print(f"==> iteration {t}/{args.iterations}")
        sel_file = logs / f"selection_{t}.npz"
        if inside is not None and sel_file.is_file():
            # ---- resumed inside this iteration: its selection, and the model + optimizer of its last epoch
            arrays = load_arrays(sel_file)
            train_idx, train_lab = arrays["train_indices"], arrays["train_labels"]
            info, start_epoch = inside["current"], int(inside["epoch_done"])
            timer = PhaseTimer(info.get("seconds"))   # the phases run before the interruption
            print(f"   (resumed) {len(train_idx)} training images, continuing after epoch {start_epoch}")
        else:
            timer = PhaseTimer()
            # ---- 1-2. avg_pool features of the target training images, previous model
            with timer("extract"):
                if previous is None:  # resumed after iteration t - 1
                    with strategy.scope():
                        previous = load_model(ckpt_dir / f"{t - 1}.keras", compile=False)
                feats = extract_features(feature_model(previous), images[pool], args.eval_batch_size,
                                         not args.no_progress, "target features")
            # ---- 3. k-means with K on the raw features (scikit-learn, or --kmeans faiss)
            with timer("kmeans"):
                clustering = kmeans(feats, K, seed=epoch_seed(args.seed, 1, t, 1), n_init=args.kmeans_n_init,
                                    max_iter=args.kmeans_max_iter, method=args.kmeans)
            # ---- 4-6. centre images, cosine similarity, reliable images keep their k-means label
            with timer("selection"):
                sel = select_reliable(feats, clustering, args.lam, args.selection)
            rel = pool[sel.indices]
            info = {"selected": sel.num_selected, "clusters_used": sel.num_clusters_used,
                    "clusters": int(len(np.unique(clustering.labels))),
                    **pseudo_label_quality(true_pids[rel], sel.labels), "seconds": timer.seconds}
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
        steps = steps_per_epoch(len(train_idx), args.batch_size, args.max_steps)
        print(f"   fine-tuning a fresh baseline copy: {len(train_idx)} images, {width} classes, "
              f"{steps} steps/epoch, epochs {start_epoch + 1}..{E}")

        last_logs, t_fit = {}, time.perf_counter()

        def epoch_done(epoch, logs_, t=t, info=info, model_=model, collapsed=collapsed, timer=timer,
                       t_fit=t_fit, last_logs=last_logs):
            if collapsed:
                print(collapsed + f" (epoch {epoch})")
            save_model(model_, last, checkpoint_config(run_config(args), "pul", t))
            # the training seconds so far, kept in the state: a resumed iteration adds its own
            trained = timer.seconds.get("train", 0.0) + time.perf_counter() - t_fit
            info["seconds"] = {**timer.seconds, "train": round(trained, 3)}
            save_state(t, epoch, False, info)
            log_epoch(scalars, (t - 1) * E + epoch, "pul", logs_, model_)
            last_logs.update(logs_)

        with timer("train"):
            fit(model, stream, E, steps, start_epoch, seed_parts=(args.seed, 1, t), on_epoch_done=epoch_done,
                where=f"PUL iteration {t}", verbose=0 if args.no_progress else None)

        # ---- 10. save iteration t's model; evaluate (the original evaluated every checkpoint)
        save_inference_copy(model, ckpt_dir / f"{t}.keras", checkpoint_config(run_config(args), "pul", t))
        if args.keep_checkpoints == "last" and t > 1 and (ckpt_dir / f"{t - 1}.keras").exists():
            (ckpt_dir / f"{t - 1}.keras").unlink()
        record = {"iteration": t, **info}
        if t == args.iterations or (args.eval_every and t % args.eval_every == 0):
            with timer("evaluate"):
                record["eval"] = evaluate(model, f"iteration {t} on the target")
            log_eval(scalars, t, record["eval"])
        # the common per-entry figures of the five methods: phase seconds ("cluster" = kmeans +
        # selection), the images the fine-tuning saw and those extracted for clustering, GPU peak
        record["seconds"] = timer.entry()
        record["images"] = {"train": stream.images_seen(E * steps), "extract": len(pool)}
        record["gpu_peak_mb"] = gpu_peak_mb()
        print(timer.line() + f"; images: train {record['images']['train']}, extract {len(pool)}")
        # the common tags of the five methods (PUL's "epoch" is its iteration), then PUL's own
        scalars.log(t, **{"train/loss": last_logs.get("loss"),
                          "train/lr": float(model.optimizer.learning_rate.numpy()),
                          "cluster/clusters": info.get("clusters", K), "cluster/outliers": 0,
                          "time/epoch": sum(timer.seconds.values()),
                          "pul/selected": info["selected"], "pul/not_reliable": len(pool) - info["selected"],
                          "pul/clusters_used": info["clusters_used"], "pul/pseudo_label_ari": info["ari"],
                          **{f"pul/seconds_{k}": v for k, v in timer.seconds.items()},
                          **{f"time/{k}": record["seconds"][k] for k in timer.COMMON}})
        history.append(record)
        save_state(t, E, True, None)
        if last.exists():
            last.unlink()
        previous = model

    # ---- results.json: the last iteration's model (the repo gives no rule to pick one of the 25)
    final = last_record(history, args.iterations)
    if final is None:  # finished before, only the results are missing
        with strategy.scope():
            final = {"eval": evaluate(load_model(ckpt_dir / f"{args.iterations}.keras", compile=False),
                                      f"iteration {args.iterations} on the target")}
    path = write_pul_results(
        logs, semi=semi, source=args.source, target=args.dataset, scale=args.scale, final=final,
        initial=initial, history=history, iterations=args.iterations, epochs=E, K=K, command=args.command,
        config=run_config(args), baseline_path=baseline_path, baseline_summary=baseline_summary,
        wall_before=wall_before, t_start=t_start, t_process=t_process)
    print(f"==> target {args.dataset}: baseline mAP {initial['native']['mAP']:.1f} -> PUL mAP "
          f"{final['eval']['native']['mAP']:.1f} (trapezoid); stepwise {initial['common']['mAP']:.1f} -> "
          f"{final['eval']['common']['mAP']:.1f}; results: {path}")
    return {"initial": initial, "final": final["eval"], "results": str(path)}


# ============================================================================ main
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.print_config:
        print(config_yaml(args._config), end="")
        return 0
    logs = Path(args.logs_dir).resolve()

    def body() -> int:
        # where the baseline comes from, the target's listing, K and every check that depends on
        # them: before any training
        target = None
        if args.mode != "baseline":
            check_baseline_given(args.baseline, args.source, logs)
            target = prepare_target(args.dataset, args.data_root, args.mode, args.known, args.num_clusters,
                                    args.num_ids)
        return run(args, logs, target)

    return run_in_logs_dir(logs, args.command, lambda: check_run_folder(logs, args.resume, run_config(args),
                                                                        PLUMBING), body)


def run(args, logs: Path, target: dict | None) -> int:
    config = run_config(args)
    scalars = set_up(logs, config, config_yaml(config), args.seed, args.deterministic, args.mirror_cpus)
    if args.mode == "baseline":
        run_baseline(args, logs, args.dataset, args.data_root, scalars)
        scalars.close()
        return 0
    if args.source and not args.baseline:
        summary = run_baseline(args, logs / "baseline", args.source, args.source_root or args.data_root,
                               scalars)
        baseline_path = Path(summary["path"])
    else:
        baseline_path, summary = given_baseline(args.baseline, logs)
        if not args.baseline:
            args.source = (summary or {}).get("settings", {}).get("source")
    run_pul(args, logs, baseline_path, summary, scalars, T0, target)
    scalars.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
