#!/usr/bin/env python
"""Evaluates a saved PUL checkpoint (.keras: a baseline 0.keras or an iteration's N.keras).

    python examples/test.py LOGS/checkpoints/25.keras            # dataset and data root from the checkpoint
    python examples/test.py --checkpoint LOGS/checkpoints/25.keras --dataset market --data-root DATA
    python examples/test.py LOGS/checkpoints/25.keras --rerank --visrank 10 --logs-dir LOGS

Features: the avg_pool output (inference mode); cosine ranking; the official Market-1501
protocol through common_eval, printed in the original's trapezoid AP and in the common step-wise AP.
The input size is read from the model. A checkpoint written by examples/train.py carries its run's
configuration: without --dataset/--data-root, an iteration's model is tested on the run's target
and a baseline (0.keras) on its source; flags override. The model is loaded in Keras' safe mode: a
file that would run code when loaded is refused.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pul  # noqa: F401  (sets KERAS_BACKEND=tensorflow)
from pul import PULError
from pul.datasets import NAMES

try:  # data problems found by the evaluator (no valid query, NaN distances, ...)
    from common_eval import EvaluationError
except ImportError:  # pragma: no cover - a common_eval without it
    class EvaluationError(ValueError):
        pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", help="a .keras file written by examples/train.py")
    p.add_argument("--checkpoint", dest="checkpoint_flag", metavar="PATH",
                   help="[added] the same, as a flag (the vocabulary of the other methods)")
    p.add_argument("--dataset", help=f"test set ({', '.join(NAMES)}, or market/duke/cuhk03); default: the "
                                     "checkpoint's (its run's target, or the source for a baseline)")
    p.add_argument("--data-root", default=None, help="default: the checkpoint's, else 'data'")
    p.add_argument("--batch-size", type=int, default=None, help="default: the run's eval batch size, else 64")
    p.add_argument("--rerank", action="store_true",
                   help="[added] k-reciprocal re-ranking of the cosine distances (k1 20, k2 6, lambda 0.3)")
    p.add_argument("--visrank", type=int, default=0, metavar="K",
                   help="[added] write ranked-list pictures with the top K gallery images (0: off)")
    p.add_argument("--visrank-queries", type=int, default=20, metavar="N",
                   help="[added] how many queries get a picture (0: all)")
    p.add_argument("--logs-dir", default=None,
                   help="run folder for visrank/ (default: the checkpoint's folder)")
    p.add_argument("--json", help="also write the metrics to this file")
    p.add_argument("--no-progress", action="store_true")
    return p


def test_defaults(config: dict | None) -> dict:
    """dataset, data_root and batch_size a checkpoint's stored configuration implies (may be empty)."""
    if not config:
        return {}
    if config.get("stage") == "baseline" and config.get("source"):   # the baseline of a PUL run
        out = {"dataset": config["source"], "data_root": config.get("source_root") or config.get("data_root")}
    else:
        out = {"dataset": config.get("dataset"), "data_root": config.get("data_root")}
    out["batch_size"] = config.get("eval_batch_size")
    return {k: v for k, v in out.items() if v is not None}


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.checkpoint and a.checkpoint_flag and a.checkpoint != a.checkpoint_flag:
        p.error("give the checkpoint once (positional or --checkpoint)")
    a.checkpoint = a.checkpoint or a.checkpoint_flag
    if not a.checkpoint:
        p.error("the checkpoint to evaluate is required (CHECKPOINT or --checkpoint PATH)")
    if a.batch_size is not None and a.batch_size < 1:
        p.error("--batch-size must be >= 1")
    if a.visrank < 0 or a.visrank_queries < 0:
        p.error("--visrank and --visrank-queries must be >= 0")
    try:
        from pul.checkpoint import read_config
        from pul.datasets import init_dataset
        from pul.evaluation import (
            COMMON_AP,
            NATIVE_AP,
            cosine_distances,
            evaluate_distances,
            evaluate_features,
            extract_from_records,
            format_metrics,
            rerank_distances,
        )
        from pul.model import feature_model, load_model

        if not Path(a.checkpoint).is_file():
            raise PULError(f"checkpoint '{a.checkpoint}' does not exist")
        stored = test_defaults(read_config(a.checkpoint))
        dataset = a.dataset or stored.get("dataset")
        if not dataset:
            raise PULError(f"{a.checkpoint} holds no run configuration (an earlier version wrote it): "
                           "give --dataset NAME and --data-root DIR")
        data_root = a.data_root or stored.get("data_root") or "data"
        batch_size = a.batch_size or int(stored.get("batch_size", 64))
        model = load_model(Path(a.checkpoint), compile=False)
        size = tuple(int(s) for s in model.input_shape[1:3])
        ds = init_dataset(dataset, data_root)
        print(ds.summary())
        fm, progress = feature_model(model), not a.no_progress
        qf = extract_from_records(fm, ds.query, size, batch_size, progress=progress, desc="query features")
        gf = extract_from_records(fm, ds.gallery, size, batch_size, progress=progress,
                                  desc="gallery features")
        dist = None
        if a.rerank:
            dist = rerank_distances(qf, gf)
            res = evaluate_distances(dist, ds.query, ds.gallery)
        else:
            res = evaluate_features(qf, gf, ds.query, ds.gallery)
        pictures = None
        if a.visrank:
            from common_eval import visualize_ranked_results
            folder = Path(a.logs_dir) if a.logs_dir else Path(a.checkpoint).resolve().parent
            pictures = visualize_ranked_results(
                dist if dist is not None else cosine_distances(qf, gf), ds.query, ds.gallery,
                folder / "visrank", topk=a.visrank, max_queries=a.visrank_queries or len(ds.query))
    except PULError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EvaluationError as exc:
        print(f"error: evaluation failed: {exc}; check the query and gallery folders of the dataset",
              file=sys.stderr)
        return 2
    out = {"checkpoint": str(a.checkpoint), "dataset": ds.name, "input_size": list(size), "rerank": a.rerank,
           "native": res.metrics(NATIVE_AP), "common": res.metrics(COMMON_AP),
           "rank20": 100.0 * res.rank(20), "num_valid_queries": res.num_valid_queries}
    what = "re-ranked, " if a.rerank else ""
    print(f"{a.checkpoint} on {ds.name} ({what}{res.num_valid_queries} queries)")
    print(f"  native: {format_metrics(out['native'])}  R20 {out['rank20']:.1f}")
    print(f"  common: {format_metrics(out['common'])}")
    if pictures is not None:
        print(f"  ranked lists: {len(pictures)} pictures in {Path(pictures[0]).parent if pictures else '-'}")
    if a.json:
        from pul.checkpoint import save_json
        from pul.runfiles import disk_full_line
        try:
            save_json(out, a.json)
        except PULError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            line = disk_full_line(exc)
            if line is None:
                raise
            print(line, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
