#!/usr/bin/env python
"""Evaluates a saved PUL checkpoint (.keras: a baseline 0.keras or an iteration's N.keras).

    python examples/test.py LOGS/checkpoints/25.keras --dataset market1501 --data-root DATA
    python examples/test.py --checkpoint LOGS/checkpoints/25.keras --dataset market --data-root DATA

Features: the avg_pool output (inference mode); cosine ranking; the official Market-1501
protocol through common_eval, printed in the original's trapezoid AP and in the common step-wise AP.
The input size is read from the model. The model is loaded in Keras' safe mode: a file that would
run code when loaded is refused.
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", help="a .keras file written by examples/train.py")
    p.add_argument("--checkpoint", dest="checkpoint_flag", metavar="PATH",
                   help="[added] the same, as a flag (the vocabulary of the other methods)")
    p.add_argument("--dataset", required=True, help=f"test set ({', '.join(NAMES)}, or market/duke/cuhk03)")
    p.add_argument("--data-root", default="data")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", help="also write the metrics to this file")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    if a.checkpoint and a.checkpoint_flag and a.checkpoint != a.checkpoint_flag:
        p.error("give the checkpoint once (positional or --checkpoint)")
    a.checkpoint = a.checkpoint or a.checkpoint_flag
    if not a.checkpoint:
        p.error("the checkpoint to evaluate is required (CHECKPOINT or --checkpoint PATH)")
    if a.batch_size < 1:
        p.error("--batch-size must be >= 1")
    try:
        from pul.datasets import init_dataset
        from pul.evaluation import COMMON_AP, NATIVE_AP, evaluate_model, format_metrics
        from pul.model import feature_model, load_model

        model = load_model(Path(a.checkpoint), compile=False)
        size = tuple(int(s) for s in model.input_shape[1:3])
        ds = init_dataset(a.dataset, a.data_root)
        print(ds.summary())
        res = evaluate_model(feature_model(model), ds, size, a.batch_size, not a.no_progress)
    except PULError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EvaluationError as exc:
        print(f"error: evaluation failed: {exc}; check the query and gallery folders of the dataset",
              file=sys.stderr)
        return 2
    out = {"checkpoint": str(a.checkpoint), "dataset": ds.name, "input_size": list(size),
           "native": res.metrics(NATIVE_AP), "common": res.metrics(COMMON_AP),
           "rank20": 100.0 * res.rank(20), "num_valid_queries": res.num_valid_queries}
    print(f"{a.checkpoint} on {ds.name} ({res.num_valid_queries} queries)")
    print(f"  native: {format_metrics(out['native'])}  R20 {out['rank20']:.1f}")
    print(f"  common: {format_metrics(out['common'])}")
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
