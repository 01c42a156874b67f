"""Evaluates a saved 3C model on a dataset's query/gallery split.

    python examples/test.py --dataset market1501 --root-dir ~/Dataset --resume logs/log/model_best.pth.tar
    python examples/test.py --dataset market1501 --resume PATH --rerank

Reads this reproduction's checkpoints (model_best.pth.tar, checkpoint.pth.tar, model_eN.pth.tar:
the model and the flags saved with it) and the original 3C's ``model_best.pth`` (a bare state
dict whose keys 3C wrote with ``k.strip('module.')``, which also cuts "num_batches_tracked" to
"num_batches_track"; repaired here; pass --arch/--pooling-type/--height/--width as for training).
The original has no test script (main.py evaluates during training); the flags follow its
config: --eval-dist, --rerank (race-free and memory-bounded here, through common_eval).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from ccc import datasets, models
from ccc.data import build_test_loader
from ccc.errors import CCCError, short_message
from ccc.evaluation import describe, evaluate_model
from ccc.utils.checkpoint import FORMAT, load_checkpoint, load_model_state, model_state
from ccc.utils.logging import console_logging
from ccc.utils.runfiles import atomic_write, disk_full_line, dumps_strict
from ccc.utils.seed import seed_everything
from common_eval import EvaluationError

log = logging.getLogger("ccc.test")
MODEL_FLAGS = ("arch", "pooling_type", "height", "width")
DEFAULTS = {"arch": "resnet50", "pooling_type": "gem", "height": 256, "width": 128}


def none_or_str(text):
    return None if text in (None, "None", "none", "") else text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a 3C checkpoint",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", type=lambda t: {"market": "market1501"}.get(t, t), default="market1501",
                   choices=datasets.names(), help="(market [added]: alias of market1501)")
    p.add_argument("--root-dir", "--data-root", dest="root_dir", type=str,
                   default=str(Path.home() / "Dataset"),
                   help="(--data-root [added]: alias)")
    p.add_argument("--resume", "--checkpoint", dest="resume", type=str, required=True, metavar="PATH",
                   help="checkpoint to evaluate (--checkpoint [added]: alias)")
    p.add_argument("--arch", type=str, default=None, choices=models.names(),
                   help="default: the checkpoint's, else resnet50")
    p.add_argument("--pooling-type", type=str, default=None, choices=("avg", "gem"),
                   help="default: the checkpoint's, else gem")
    p.add_argument("--height", type=int, default=None, help="default: the checkpoint's, else 256")
    p.add_argument("--width", type=int, default=None, help="default: the checkpoint's, else 128")
    p.add_argument("--eval-dist", type=none_or_str, default=None, choices=(None, "Euclidean", "Cosine"),
                   help="None = squared Euclidean (3C's default)")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=999)
    p.add_argument("--device", type=str, default="auto")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--output", type=str, default=None, help="[added] write the metrics as JSON here")
    return p


def run(args) -> int:
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    seed_everything(args.seed)
    ckpt = load_checkpoint(args.resume)
    saved = ckpt.get("args", {}) if ckpt.get("format") == FORMAT else {}
    for key in MODEL_FLAGS:
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key, DEFAULTS[key]))
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto"
                          else args.device)

    dataset = datasets.create(args.dataset, args.root_dir)
    model = models.create(args.arch, pretrained="none", pooling_type=args.pooling_type)
    load_model_state(model, model_state(ckpt), args.resume)
    model.to(device).eval()
    log.info(f"==> {args.resume}: {args.arch}, {args.pooling_type} pooling, {args.height}x{args.width}"
             + (f", epoch {ckpt['epoch']}" if "epoch" in ckpt else ""))
    loaders = [build_test_loader(split, args.height, args.width, args.batch_size, args.num_workers,
                                 device.type == "cuda") for split in (dataset.query, dataset.gallery)]
    result = evaluate_model(model, *loaders, dataset.query, dataset.gallery, device, eval_dist=args.eval_dist,
                            rerank=args.rerank)
    log.info(f"==> {'re-ranked ' if args.rerank else ''}{describe(result)}")
    if args.output:
        text = dumps_strict(result.metrics("stepwise"), indent=2) + "\n"
        atomic_write(args.output, lambda f: f.write(text.encode()))
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    console_logging()
    try:
        return run(args)
    except CCCError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    except EvaluationError as exc:
        print(f"error: cannot evaluate on {args.dataset} ({exc}); check the query/ and gallery folders "
              f"under --root-dir {args.root_dir}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
