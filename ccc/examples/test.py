"""Evaluates a saved 3C model on a dataset's query/gallery split.

    python examples/test.py --checkpoint logs/log/model_best.pth.tar
    python examples/test.py --checkpoint PATH --rerank --visrank 10 --visrank-queries 20

A checkpoint of this reproduction (model_best.pth.tar, checkpoint.pth.tar, model_eN.pth.tar)
carries the resolved configuration it was trained with (key ``config``): the dataset, its
--root-dir, the model (--arch, --pooling-type), the input size, --eval-dist and --rerank come
from it; a flag given here overrides it. The original 3C's ``model_best.pth`` (a bare state dict
whose keys 3C wrote with ``k.strip('module.')``, which also cuts "num_batches_tracked" to
"num_batches_track"; repaired here) has no configuration: pass --dataset, --root-dir, --arch,
--pooling-type, --height, --width as for training (else 3C's defaults).
The original has no test script (main.py evaluates during training); the flags follow its
config: --eval-dist, --rerank (race-free and memory-bounded here, through common_eval).
--visrank K [added] writes the ranked lists (the query and its top K gallery images, green/red
frames for true/false matches) of the first --visrank-queries queries as JPEGs, plus grid.jpg,
into <run folder>/visrank/ (run folder: --logs-dir, else the checkpoint's folder); with --rerank
they show the re-ranked order.
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
from ccc.evaluation import describe, distances, evaluate_features, extract_features
from ccc.extractor import checkpoint_config, resolve_device
from ccc.utils.checkpoint import load_checkpoint, load_model_state, model_state
from ccc.utils.logging import console_logging
from ccc.utils.runfiles import atomic_write, disk_full_line, dumps_strict
from ccc.utils.seed import seed_everything
from common_eval import EvaluationError

log = logging.getLogger("ccc.test")
# what an unset flag takes from the checkpoint's configuration (else these defaults: 3C's)
FROM_CHECKPOINT = {"dataset": "market1501", "root_dir": str(Path.home() / "Dataset"), "arch": "resnet50",
                   "pooling_type": "gem", "height": 256, "width": 128, "eval_dist": None, "rerank": False}
UNSET = "<checkpoint>"


def none_or_str(text):
    return None if text in (None, "None", "none", "") else text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a 3C checkpoint (settings from the checkpoint; flags "
                                            "given here override them)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--resume", "--checkpoint", dest="resume", type=str, required=True, metavar="PATH",
                   help="checkpoint to evaluate (--checkpoint [added]: alias)")
    p.add_argument("--dataset", type=lambda t: {"market": "market1501"}.get(t, t), default=None,
                   choices=datasets.names(), help="default: the checkpoint's, else market1501 "
                                                  "(market [added]: alias of market1501)")
    p.add_argument("--root-dir", "--data-root", dest="root_dir", type=str, default=None,
                   help="default: the checkpoint's, else ~/Dataset (--data-root [added]: alias)")
    p.add_argument("--arch", type=str, default=None, choices=models.names(),
                   help="default: the checkpoint's, else resnet50")
    p.add_argument("--pooling-type", type=str, default=None, choices=("avg", "gem"),
                   help="default: the checkpoint's, else gem")
    p.add_argument("--height", type=int, default=None, help="default: the checkpoint's, else 256")
    p.add_argument("--width", type=int, default=None, help="default: the checkpoint's, else 128")
    p.add_argument("--eval-dist", type=none_or_str, default=UNSET, choices=(None, "Euclidean", "Cosine"),
                   help="None = squared Euclidean (3C's default); default: the checkpoint's")
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3); default: the checkpoint's")
    p.add_argument("--visrank", type=int, default=0, metavar="K",
                   help="[added] write the top-K ranked list of each query as a JPEG into "
                        "<run folder>/visrank (0: off)")
    p.add_argument("--visrank-queries", type=int, default=20, metavar="N",
                   help="[added] how many queries --visrank draws (0: all)")
    p.add_argument("--logs-dir", "--log-dir", dest="logs_dir", type=str, default=None,
                   help="[added] the run folder for --visrank (default: the checkpoint's folder)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=999)
    p.add_argument("--device", type=str, default="auto")
    p.add_argument("--num-threads", type=int, default=None)
    p.add_argument("--output", type=str, default=None, help="[added] write the metrics as JSON here")
    return p


def resolve(args, ckpt: dict) -> None:
    """Unset flags from the checkpoint's configuration (else 3C's defaults)."""
    saved = checkpoint_config(ckpt)
    for key, default in FROM_CHECKPOINT.items():
        if getattr(args, key) in (None, UNSET):
            setattr(args, key, saved.get(key, default))
    if args.eval_dist == UNSET:
        args.eval_dist = None


def write_visrank(args, distmat, dataset) -> Path:
    import common_eval
    draw = getattr(common_eval, "visualize_ranked_results", None)
    if draw is None:
        raise CCCError("--visrank needs common_eval.visualize_ranked_results, which this common_eval "
                       "lacks: reinstall common_eval from this repository")
    out_dir = Path(args.logs_dir if args.logs_dir else Path(args.resume).resolve().parent) / "visrank"
    written = draw(distmat, dataset.query, dataset.gallery, out_dir, topk=args.visrank,
                   max_queries=args.visrank_queries)
    log.info(f"==> ranked lists ({'re-ranked, ' if args.rerank else ''}top {args.visrank}) of "
             f"{len(written)} queries (and grid.jpg) in {out_dir}")
    return out_dir


def run(args) -> int:
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    seed_everything(args.seed)
    ckpt = load_checkpoint(args.resume)
    resolve(args, ckpt)
    device = resolve_device(args.device)

    dataset = datasets.create(args.dataset, args.root_dir)
    model = models.create(args.arch, pretrained="none", pooling_type=args.pooling_type)
    load_model_state(model, model_state(ckpt), args.resume)
    model.to(device).eval()
    log.info(f"==> {args.resume}: {args.arch}, {args.pooling_type} pooling, {args.height}x{args.width}"
             + (f", epoch {ckpt['epoch']}" if "epoch" in ckpt else "")
             + f"; {args.dataset} under {args.root_dir}")
    loaders = [build_test_loader(split, args.height, args.width, args.batch_size, args.num_workers,
                                 device.type == "cuda") for split in (dataset.query, dataset.gallery)]
    qf = extract_features(model, loaders[0], device, "extract query")
    gf = extract_features(model, loaders[1], device, "extract gallery")
    distmat = distances(qf, gf, args.eval_dist, args.rerank) if args.visrank > 0 else None
    result = evaluate_features(qf, gf, dataset.query, dataset.gallery, eval_dist=args.eval_dist,
                               rerank=args.rerank, distmat=distmat)
    log.info(f"==> {'re-ranked ' if args.rerank else ''}{describe(result)}")
    if args.output:
        text = dumps_strict(result.metrics("stepwise"), indent=2) + "\n"
        atomic_write(args.output, lambda f: f.write(text.encode()))
    if args.visrank > 0:
        write_visrank(args, distmat, dataset)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.visrank < 0 or args.visrank_queries < 0:
        parser.error("--visrank and --visrank-queries must be 0 or more")
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
