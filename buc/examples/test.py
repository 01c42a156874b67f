"""Evaluates a saved BUC checkpoint on a dataset's query/gallery split.

    python examples/test.py -d market1501 --checkpoint logs/market1501/model_best.pth.tar

The model configuration (arch, embedding size, input size, frames) is read from the arguments
saved in the checkpoint; flags given here override it. Prints Open-ReID's summary and both AP
flavours, and with ``--output FILE`` writes them as JSON.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train.py

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from buc import datasets, models  # noqa: E402
from buc.bottom_up import BottomUp  # noqa: E402
from buc.datasets import DatasetNotFoundError, MalformedDatasetError  # noqa: E402
from buc.evaluators import COMMON_AP, NATIVE_AP  # noqa: E402
from buc.utils import set_seed  # noqa: E402
from buc.utils.data import CorruptImageError  # noqa: E402
from buc.utils.runfiles import BUCError, disk_full_line  # noqa: E402
from buc.utils.serialization import load_checkpoint, write_json  # noqa: E402
from common_eval import EvaluationError  # noqa: E402

USER_ERRORS = (BUCError, DatasetNotFoundError, MalformedDatasetError, CorruptImageError, EvaluationError)

REPO = Path(__file__).resolve().parents[2]
FROM_CHECKPOINT = ("arch", "fea", "height", "width", "max_frames", "eval_batch_size", "fixed_layer")


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        return evaluate(p, args)
    except USER_ERRORS as exc:   # bad input: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # the checkpoint's weights do not fit the model
        if "state_dict" not in str(exc):
            raise
        print(f"error: {args.checkpoint}: {str(exc).splitlines()[0]}; pass the -a/-f the checkpoint "
              "was trained with", file=sys.stderr)
        return 2
    except OSError as exc:
        line = disk_full_line(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="evaluate a BUC checkpoint")
    p.add_argument("-d", "--dataset", default=None, help="default: the checkpoint's dataset")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pth.tar or model_best.pth.tar")
    p.add_argument("--data_dir", "--data-dir", "--data-root", dest="data_dir", default=None)
    p.add_argument("--converted_dir", default=None,
                   help="converted copy (default ${XDG_CACHE_HOME:-~/.cache}/buc/converted/<key>)")
    p.add_argument("-a", "--arch", default=None, choices=models.names())
    p.add_argument("-f", "--fea", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--max_frames", type=int, default=None)
    p.add_argument("--eval_batch_size", type=int, default=None)
    p.add_argument("--fixed_layer", default=None)
    p.add_argument("--cmc_configs", choices=["market1501", "all"], default="market1501")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default=None, help="write the metrics as JSON here")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return p


def evaluate(p, args) -> int:
    ckpt = load_checkpoint(args.checkpoint)
    if not isinstance(ckpt.get("model", ckpt.get("state_dict")), dict):
        raise BUCError(f"{args.checkpoint} holds no model weights (no 'model' or 'state_dict' entry); "
                       "pass a BUC checkpoint.pth.tar or model_best.pth.tar")
    saved = ckpt.get("args", {})
    for key in FROM_CHECKPOINT:
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key))
    args.dataset = args.dataset or saved.get("dataset")
    if args.dataset is not None:
        try:
            datasets.get_class(args.dataset)
        except KeyError as exc:
            p.error(str(exc.args[0]))
    args.data_dir = args.data_dir or saved.get("data_dir") or os.environ.get("REID_DATA", str(REPO / "data"))
    if args.dataset is None:
        p.error("the checkpoint does not name its dataset; pass -d")
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)  # video tracklets longer than max_frames are subsampled at random
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device

    dataset = datasets.create(args.dataset, args.data_dir, converted_dir=args.converted_dir,
                              progress=args.progress)
    fixed = dataset.is_video if args.fixed_layer in (None, "auto") else args.fixed_layer == "yes"
    model = models.create(args.arch or "avg_pool", pretrained="none", embedding_size=args.fea or 2048,
                          fixed_layer=fixed)
    weights = ckpt["model"] if "model" in ckpt else ckpt["state_dict"]   # Open-ReID: state_dict
    model.load_state_dict({k.removeprefix("module."): v for k, v in weights.items()})
    bu = BottomUp(model, [r[0] for r in dataset.train], dataset.images_dir, is_video=dataset.is_video,
                  height=args.height or 256, width=args.width or 128, workers=0,
                  embedding_size=args.fea or 2048, max_frames=args.max_frames or 900,
                  eval_batch_size=args.eval_batch_size, device=device, origin_of=dataset.origin_of,
                  progress=args.progress)
    configs = ("allshots", "cuhk03", "market1501") if args.cmc_configs == "all" else ("market1501",)
    result = bu.evaluate(dataset.query, dataset.gallery, cmc_configs=configs, seed=args.seed)
    out = {"checkpoint": str(args.checkpoint), "dataset": args.dataset,
           "common": result.metrics(COMMON_AP), "native": result.metrics(NATIVE_AP)}
    print(json.dumps(out, indent=1))
    if args.output:
        write_json(out, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
