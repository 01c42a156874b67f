"""Evaluates a saved CDSM model on a dataset's query/gallery split.

    python examples/test.py --checkpoint examples/logs/market1501/x/model_best.pth.tar
    python examples/test.py -d market1501 --resume PATH --rerank --visrank 10

Reads this reproduction's checkpoints (model_best.pth.tar / checkpoint.pth.tar: the teacher, and
the configuration it was trained with, key "config": model, input size, dataset and data folder,
so the checkpoint alone suffices; flags given here override it) and the original CDSM's
(``state_dict`` with DataParallel's ``module.`` prefix; pass -a/--features/--pooling-type as for
training). Defaults are GeM pooling and bicubic resizing, as at training time: the original
test.py defaulted to average pooling and bilinear resizing, which does not match how its
reported models were evaluated. ``--visrank K`` [added] draws each query's top-K gallery images
(common_eval.visualize_ranked_results) into <run folder>/visrank/, the run folder being
--logs-dir, else the checkpoint's folder.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

import common_eval
from cdsm import datasets, models
from cdsm.data import build_test_loader
from cdsm.errors import CDSMError, short_message
from cdsm.evaluation import describe, distance_matrix, evaluate_features, extract_features
from cdsm.extractor import load_model, resolve_device
from cdsm.utils.checkpoint import checkpoint_config, load_checkpoint
from cdsm.utils.logging import console_logging
from cdsm.utils.runfiles import atomic_write, disk_full_line, dumps_strict, finite_float
from cdsm.utils.seed import seed_everything
from common_eval import EvaluationError

log = logging.getLogger("cdsm.test")
HERE = Path(__file__).resolve().parent
DEFAULT_DATASET, DEFAULT_DATA_DIR = "market1501", str(HERE / "data")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a CDSM checkpoint",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-d", "--dataset", type=datasets.dataset_arg, default=None,
                   choices=datasets.names(),
                   help=f"the original's names, or [added] market, duke (default: the checkpoint's, "
                        f"else {DEFAULT_DATASET})")
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
    p.add_argument("--visrank", type=int, default=0, metavar="K",
                   help="[added] draw every query's top-K gallery images into <run folder>/visrank/ (0: off)")
    p.add_argument("--visrank-queries", type=int, default=20, metavar="N",
                   help="[added] how many queries --visrank draws (0: all)")
    p.add_argument("--logs-dir", type=str, default=None, metavar="PATH",
                   help="[added] run folder for --visrank (default: the checkpoint's folder)")
    p.add_argument("--dsbn", action="store_true", help="not supported: CDSM has no domain-specific BN")
    p.add_argument("--test-source", action="store_true", help="not supported (UDA option of SpCL)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-dir", type=str, metavar="PATH", default=None,
                   help="default: the checkpoint's, else examples/data")
    p.add_argument("--data-root", dest="data_dir", type=str, metavar="PATH", default=argparse.SUPPRESS,
                   help="[added] the same as --data-dir")
    p.add_argument("--device", type=str, default="auto")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--output", type=str, default=None, help="[added] write the metrics as JSON here")
    return p


def query_gallery_features(args):
    """The checkpoint's model (its stored configuration, flags overriding it) and the query and
    gallery features it ranks: (dataset, query features, gallery features). Fills in args."""
    if args.dsbn or args.test_source:
        raise CDSMError("--dsbn/--test-source are SpCL's domain-adaptation options; CDSM's models "
                        "have no domain-specific BatchNorm")
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    seed_everything(args.seed)
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.resume)
    config = checkpoint_config(ckpt)
    if args.dataset is None:
        args.dataset = config.get("dataset", DEFAULT_DATASET)
    if args.data_dir is None:
        args.data_dir = config.get("data_dir", DEFAULT_DATA_DIR)
    dataset = datasets.create(args.dataset, args.data_dir)
    model, settings = load_model(ckpt, args.resume, args.which, arch=args.arch, features=args.features,
                                 dropout=args.dropout, pooling_type=args.pooling_type, height=args.height,
                                 width=args.width)
    for key, value in settings.items():
        setattr(args, key, value)
    model.to(device)
    epoch = f", epoch {ckpt['epoch']}" if "epoch" in ckpt else ""
    log.info(f"==> {args.resume}: {args.arch}, {args.pooling_type} pooling, {args.height}x{args.width}"
             f"{epoch}; {args.dataset} in {args.data_dir}")
    loaders = [build_test_loader(split, args.height, args.width, args.batch_size, args.workers,
                                 device.type == "cuda") for split in (dataset.query, dataset.gallery)]
    qf = extract_features(model, loaders[0], device, "extract query")
    gf = extract_features(model, loaders[1], device, "extract gallery")
    return dataset, qf, gf


def run(args) -> int:
    if args.visrank < 0 or args.visrank_queries < 0:
        raise CDSMError("--visrank and --visrank-queries must be >= 0")
    dataset, qf, gf = query_gallery_features(args)
    # the distances --visrank draws; with --rerank the same matrix is ranked
    dist = distance_matrix(qf, gf, rerank=args.rerank) if args.visrank else None
    result = evaluate_features(qf, gf, dataset.query, dataset.gallery, rerank=args.rerank,
                               reranked=dist if args.rerank else None)
    log.info(f"==> {'re-ranked ' if args.rerank else ''}{describe(result)}")
    if args.output:
        text = dumps_strict(result.metrics("stepwise"), indent=2) + "\n"
        atomic_write(args.output, lambda f: f.write(text.encode()))
    if args.visrank:
        out_dir = Path(args.logs_dir or Path(args.resume).resolve().parent) / "visrank"
        written = common_eval.visualize_ranked_results(dist, dataset.query, dataset.gallery, out_dir,
                                                       topk=args.visrank, max_queries=args.visrank_queries)
        log.info(f"==> ranked lists of {len(written)} queries (top {args.visrank}, "
                 f"{'re-ranked' if args.rerank else 'squared Euclidean'} distances) in {out_dir}")
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
