"""Evaluates a saved CDSM model on a dataset's query/gallery split.

    python examples/test.py -d market1501 --resume examples/logs/market1501/x/model_best.pth.tar
    python examples/test.py -d market1501 --resume PATH --rerank

Reads this reproduction's checkpoints (model_best.pth.tar / checkpoint.pth.tar: the teacher, and
the model flags saved with it) and the original CDSM's (``state_dict`` with DataParallel's
``module.`` prefix; pass -a/--features/--pooling-type as for training). Defaults are GeM
pooling and bicubic resizing, as at training time: the original test.py defaulted to average
pooling and bilinear resizing, which does not match how its reported models were evaluated.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from cdsm import datasets, models
from cdsm.data import build_test_loader
from cdsm.errors import CDSMError, short_message
from cdsm.evaluation import describe, evaluate_model
from cdsm.utils.checkpoint import FORMAT, load_checkpoint, load_model_state, model_state
from cdsm.utils.logging import console_logging
from cdsm.utils.runfiles import atomic_write, disk_full_line, dumps_strict, finite_float
from cdsm.utils.seed import seed_everything
from common_eval import EvaluationError

log = logging.getLogger("cdsm.test")
HERE = Path(__file__).resolve().parent
MODEL_FLAGS = ("arch", "features", "dropout", "pooling_type", "height", "width")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a CDSM checkpoint",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-d", "--dataset", type=datasets.dataset_arg, default="market1501",
                   choices=datasets.names(),
                   help="the original's names, or [added] market, duke")
    p.add_argument("-b", "--batch-size", type=int, default=256)
    p.add_argument("-j", "--workers", type=int, default=4)
    p.add_argument("--height", type=int, default=None, help="default: the checkpoint's, else 256")
    p.add_argument("--width", type=int, default=None, help="default: the checkpoint's, else 128")
    p.add_argument("-a", "--arch", type=str, default=None, choices=models.names(),
                   help="default: the checkpoint's, else resnet50")
    p.add_argument("--features", type=int, default=None)
    p.add_argument("--dropout", type=finite_float, default=None)
    p.add_argument("--pooling-type", type=str, default=None, choices=("gem", "avg"),
                   help="default: the checkpoint's, else gem")
    p.add_argument("--resume", type=str, default=None, metavar="PATH",
                   help="checkpoint to evaluate (required)")
    p.add_argument("--checkpoint", dest="resume", type=str, default=argparse.SUPPRESS, metavar="PATH",
                   help="[added] the same as --resume")
    p.add_argument("--which", type=str, default="teacher", choices=("teacher", "student"),
                   help="[added] which model of a full checkpoint.pth.tar")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)")
    p.add_argument("--dsbn", action="store_true", help="not supported: CDSM has no domain-specific BN")
    p.add_argument("--test-source", action="store_true", help="not supported (UDA option of SpCL)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", type=str, metavar="PATH", default=str(HERE / "data"))
    p.add_argument("--data-root", dest="data_dir", type=str, metavar="PATH", default=argparse.SUPPRESS,
                   help="[added] the same as --data-dir")
    p.add_argument("--device", type=str, default="auto")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--output", type=str, default=None, help="[added] write the metrics as JSON here")
    return p


def run(args) -> int:
    if args.dsbn or args.test_source:
        raise CDSMError("--dsbn/--test-source are SpCL's domain-adaptation options; CDSM's models "
                        "have no domain-specific BatchNorm")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    seed_everything(args.seed)
    ckpt = load_checkpoint(args.resume)
    saved = ckpt.get("args", {}) if ckpt.get("format") == FORMAT else {}
    defaults = {"arch": "resnet50", "features": 0, "dropout": 0.0, "pooling_type": "gem",
                "height": 256, "width": 128}
    for key in MODEL_FLAGS:
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key, defaults[key]))
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto"
                          else args.device)

    dataset = datasets.create(args.dataset, args.data_dir)
    model = models.create(args.arch, pretrained="none", pooling_type=args.pooling_type,
                          num_features=args.features, dropout=args.dropout)
    load_model_state(model, model_state(ckpt, args.which), args.resume)
    model.to(device).eval()
    log.info(f"==> {args.resume}: {args.arch}, {args.pooling_type} pooling, {args.height}x{args.width}"
             + (f", epoch {ckpt['epoch']}" if "epoch" in ckpt else ""))
    loaders = [build_test_loader(split, args.height, args.width, args.batch_size, args.workers,
                                 device.type == "cuda") for split in (dataset.query, dataset.gallery)]
    result = evaluate_model(model, *loaders, dataset.query, dataset.gallery, device, rerank=args.rerank)
    log.info(f"==> {'re-ranked ' if args.rerank else ''}{describe(result)}")
    if args.output:
        text = dumps_strict(result.metrics("stepwise"), indent=2) + "\n"
        atomic_write(args.output, lambda f: f.write(text.encode()))
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume is None:
        parser.error("the checkpoint to evaluate is required: --resume PATH (or --checkpoint PATH)")
    console_logging()
    try:
        return run(args)
    except CDSMError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    except EvaluationError as exc:
        print(f"error: cannot evaluate on {args.dataset}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
