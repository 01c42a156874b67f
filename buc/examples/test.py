"""Evaluates a saved BUC checkpoint on a dataset's query/gallery split.

    python examples/test.py --checkpoint logs/market1501/model_best.pth.tar
    python examples/test.py --checkpoint logs/market1501/model_best.pth.tar --rerank --visrank 10

The checkpoint alone suffices: the model configuration (arch, embedding size, input size, frames),
the dataset and its data folder are read from the resolved configuration saved in it (key
``config``; ``args`` in older checkpoints); flags given here override it. Checkpoints of the
original code (Open-ReID's ``state_dict``) need -d and the -a/-f they were trained with. Prints
Open-ReID's summary and both AP flavours, and with ``--output FILE`` writes them as JSON.

Added: ``--rerank`` (k-reciprocal re-ranking, k1 20, k2 6, lambda 0.3, on the squared Euclidean
distances, through common_eval) and ``--visrank K`` (each query's top-K gallery items drawn by
common_eval.visualize_ranked_results into <run folder>/visrank/, the run folder being --logs-dir,
else the checkpoint's folder; the re-ranked distances with --rerank; video: the middle frame).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see train.py

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from buc import datasets, models  # noqa: E402
from buc.bottom_up import BottomUp  # noqa: E402
from buc.datasets import DatasetNotFoundError, MalformedDatasetError  # noqa: E402
from buc.evaluators import COMMON_AP, NATIVE_AP, evaluate_all  # noqa: E402
from buc.extractor import checkpoint_config, load_model, model_settings  # noqa: E402
from buc.utils import set_seed  # noqa: E402
from buc.utils.data import CorruptImageError  # noqa: E402
from buc.utils.runfiles import BUCError, one_line_errors  # noqa: E402
from buc.utils.serialization import load_checkpoint, write_json  # noqa: E402
from common_eval import EvaluationError, k_reciprocal_rerank, visualize_ranked_results  # noqa: E402

USER_ERRORS = (BUCError, DatasetNotFoundError, MalformedDatasetError, CorruptImageError, EvaluationError)

REPO = Path(__file__).resolve().parents[2]
FROM_CHECKPOINT = ("arch", "fea", "height", "width", "max_frames", "eval_batch_size", "fixed_layer")
RERANK = {"k1": 20, "k2": 6, "lambda_value": 0.3}


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    return one_line_errors(lambda: evaluate(p, args), USER_ERRORS)   # bad input: one line


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
    p.add_argument("--rerank", action="store_true",
                   help="[added] k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3) of the squared "
                        "Euclidean distances")
    p.add_argument("--visrank", type=int, default=0, metavar="K",
                   help="[added] draw each query's top-K gallery items into <run folder>/visrank/ (0: off)")
    p.add_argument("--visrank-queries", "--visrank_queries", dest="visrank_queries", type=int, default=20,
                   metavar="N", help="[added] how many queries --visrank draws (0: all)")
    p.add_argument("--logs-dir", "--logs_dir", dest="logs_dir", default=None,
                   help="[added] run folder for --visrank (default: the checkpoint's folder)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return p


def prepare(p, args):
    """(bu, dataset): the model from the checkpoint (its stored config, overridden by the flags
    given) wrapped as the training run evaluates it, and the dataset."""
    ckpt = load_checkpoint(args.checkpoint)
    saved = checkpoint_config(ckpt)
    for key in FROM_CHECKPOINT:
        if getattr(args, key) is None:
            setattr(args, key, saved.get(key))
    args.dataset = args.dataset or saved.get("dataset")
    if args.dataset is None:
        p.error("the checkpoint does not name its dataset; pass -d")
    try:
        video = datasets.get_class(args.dataset).is_video
    except KeyError as exc:
        p.error(str(exc.args[0]))
    args.data_dir = args.data_dir or saved.get("data_dir") or os.environ.get("REID_DATA", str(REPO / "data"))
    settings = model_settings(saved, arch=args.arch, fea=args.fea, height=args.height, width=args.width,
                              max_frames=args.max_frames, fixed_layer=args.fixed_layer, video=video)
    model = load_model(ckpt, settings, args.checkpoint)   # before the dataset: a bad file fails fast
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)  # video tracklets longer than max_frames are subsampled at random
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dataset = datasets.create(args.dataset, args.data_dir, converted_dir=args.converted_dir,
                              progress=args.progress)
    bu = BottomUp(model, [r[0] for r in dataset.train], dataset.images_dir, is_video=dataset.is_video,
                  height=settings["height"], width=settings["width"], workers=0,
                  embedding_size=settings["fea"], max_frames=settings["max_frames"],
                  eval_batch_size=args.eval_batch_size, device=device, origin_of=dataset.origin_of,
                  progress=args.progress)
    return bu, dataset


def query_gallery_features(bu, dataset) -> tuple[np.ndarray, np.ndarray]:
    """The features test.py ranks (those ``BottomUp.evaluate`` extracts)."""
    qf = bu.extract([r[0] for r in dataset.query], "extract query")
    gf = bu.extract([r[0] for r in dataset.gallery], "extract gallery")
    return qf, gf


def sq_euclidean(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    q, g = qf.astype(np.float64), gf.astype(np.float64)
    return np.maximum((q ** 2).sum(1)[:, None] + (g ** 2).sum(1)[None, :] - 2.0 * q @ g.T, 0.0)


def with_paths(records, images_dir: str) -> list:
    """(path or frame paths, pid, cam) for visualize_ranked_results (video: the tracklet's frames)."""
    out = []
    for frames, pid, cam, *_ in records:
        paths = [os.path.join(images_dir, f) for f in frames]
        out.append((paths if len(paths) > 1 else paths[0], pid, cam))
    return out


def evaluate(p, args) -> int:
    if args.visrank < 0 or args.visrank_queries < 0:
        p.error("--visrank and --visrank-queries must be >= 0")
    bu, dataset = prepare(p, args)
    configs = ("allshots", "cuhk03", "market1501") if args.cmc_configs == "all" else ("market1501",)
    qf, gf = query_gallery_features(bu, dataset)
    reranked = None
    if args.rerank:
        reranked = k_reciprocal_rerank(query_features=qf, gallery_features=gf, metric="sqeuclidean", **RERANK)
    result = evaluate_all(qf, gf, dataset.query, dataset.gallery, cmc_configs=configs, seed=args.seed,
                          distmat=reranked)
    out = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "rerank": args.rerank,
           "common": result.metrics(COMMON_AP), "native": result.metrics(NATIVE_AP)}
    print(json.dumps(out, indent=1))
    if args.output:
        write_json(out, args.output)
    if args.visrank:
        n = len(dataset.query) if not args.visrank_queries else min(args.visrank_queries, len(dataset.query))
        dist = reranked[:n] if reranked is not None else sq_euclidean(qf[:n], gf)   # the ranked distances
        folder = Path(args.logs_dir) if args.logs_dir else Path(args.checkpoint).resolve().parent
        paths = visualize_ranked_results(dist, with_paths(dataset.query[:n], dataset.images_dir),
                                         with_paths(dataset.gallery, dataset.images_dir),
                                         folder / "visrank", topk=args.visrank, max_queries=n)
        print(f"=> {len(paths)} ranked lists and grid.jpg in {folder / 'visrank'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
