"""Evaluates a saved AuxUSL checkpoint (the original's RESUME ... TEST.EVAL_ONLY True).

    python examples/test.py --checkpoint log/x/model_mAP_best.pth.tar [--data-root DIR]
    python examples/test.py --checkpoint CKPT --rerank --visrank 10 --visrank-queries 20
    python examples/test.py --config-file configs/USL_MTCluster_Duke.yml \
        RESUME log/x/model_mAP_best.pth.tar [KEY VALUE ...]           (the original's form)

The configuration is the one stored in the checkpoint (dataset, input size, architecture, the
test-time TOC/SCP/STS terms); a config file and KEY VALUE pairs given here override it, and a
checkpoint of the original code (which stores none) takes it from them. The teacher weights
('state_dict', as the original's files) are evaluated; the metrics are logged and written to
eval_results.json in the run folder (``--logs-dir``, else the checkpoint's folder), with each
test-time auxiliary term's effect on its own when any is on. ``--rerank``: k-reciprocal
re-ranking (k1 20, k2 6, lambda 0.3; TEST.RERANK.*). ``--visrank K``: the top-K gallery
tracklets of the first ``--visrank-queries`` queries (middle frames) in <run folder>/visrank/,
from the re-ranked distances with ``--rerank``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from options import setup, split_aliases  # noqa: E402

from auxusl import engine  # noqa: E402
from auxusl.data import FrameReader  # noqa: E402
from auxusl.errors import AuxUSLError, ConfigError, short_message  # noqa: E402
from auxusl.evaluation import Evaluator  # noqa: E402
from auxusl.utils import load_checkpoint  # noqa: E402

log = logging.getLogger("auxusl.train")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Evaluate an AuxUSL checkpoint (its stored configuration; flags and KEY VALUE pairs "
        "override it)"
    )
    p.add_argument("--checkpoint", metavar="PATH", help="the checkpoint to evaluate (= RESUME PATH)")
    p.add_argument("--data-root", metavar="DIR", help="the datasets' folder (= DATASETS.DIR)")
    p.add_argument("--logs-dir", metavar="DIR",
                   help="run folder (= OUTPUT_DIR; default: the checkpoint's)")
    p.add_argument("--config-file", default=None, metavar="FILE", help="a config file over the stored one")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (TEST.RERANK.ENABLED)")
    p.add_argument("--visrank", type=int, default=0, metavar="K",
                   help="top-K ranked lists of the first queries into <run folder>/visrank (0: off)")
    p.add_argument("--visrank-queries", type=int, default=20, metavar="N",
                   help="how many queries --visrank draws (0: all; default 20)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE pairs that override the configuration")
    return p


def checkpoint_path(argv) -> str | None:
    """RESUME's value (--checkpoint or the RESUME key; the last one given wins, as in setup())."""
    _, alias_opts = split_aliases(argv)
    found = None
    for i in range(0, len(alias_opts), 2):
        if alias_opts[i] == "RESUME":
            found = alias_opts[i + 1].strip("'\"")
    if "RESUME" in argv and argv.index("RESUME") + 1 < len(argv):
        found = argv[len(argv) - 1 - argv[::-1].index("RESUME") + 1]
    return found


VALUED = ("--checkpoint", "--data-root", "--logs-dir", "--config-file", "--visrank", "--visrank-queries")
SWITCHES = ("--rerank", "--print-config")


def flags_first(argv: list[str]) -> list[str]:
    """This script's flags moved before the KEY VALUE pairs, wherever they were given (argparse's
    REMAINDER would take a flag after the first pair for a configuration key)."""
    flags, rest, i = [], [], 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if name in VALUED and "=" not in a and i + 1 < len(argv):
            flags += argv[i:i + 2]
            i += 2
            continue
        (flags if name in VALUED + SWITCHES else rest).append(a)
        i += 1
    return flags + rest


def resolve(argv):
    """(cfg, args, ckpt): the checkpoint's stored configuration, then the command line."""
    argv = flags_first(argv)
    if any(a in ("-h", "--help") for a in argv):
        build_parser().parse_args(["--help"])
    path = checkpoint_path(argv)
    if not path:
        raise ConfigError("give the checkpoint to evaluate as --checkpoint <path> or RESUME <path> "
                          "(e.g. --checkpoint log/x/model_mAP_best.pth.tar)")
    ckpt = load_checkpoint(path)
    extra = ["TEST.EVAL_ONLY", "True"]
    names = {a.split("=", 1)[0] for a in argv}
    if "--logs-dir" not in names and "OUTPUT_DIR" not in argv:
        extra += ["OUTPUT_DIR", repr(str(Path(path).resolve().parent))]
    if "--rerank" in argv:
        extra += ["TEST.RERANK.ENABLED", "True"]
    rest = [a for a in argv if a != "--rerank"]
    cfg, args = setup(rest + extra, build_parser(), base=engine.stored_config(ckpt))
    args.rerank = "--rerank" in argv
    return cfg, args, ckpt


def run(cfg, args, argv, ckpt) -> int:
    start = time.perf_counter()
    out_dir = Path(cfg.OUTPUT_DIR)
    device, rank, _, progress = engine.set_up(cfg, argv)
    dataset = engine.build_dataset(cfg)
    _, test_tf = engine.build_transforms(cfg)
    reader = FrameReader(cache=cfg.DATALOADER.CACHE_IMAGES)
    num_classes = len(dataset.train) * max(1, cfg.DATALOADER.CLUSTER_SAMPLE_MULTI)
    student, teacher = engine.build_student_and_teacher(cfg, num_classes, device, pretrained="none")
    engine.resume_or_load(cfg, ckpt, student, teacher, t_start=start)
    evaluator = Evaluator(cfg, dataset, test_tf, reader, device, progress)
    if rank != 0:
        return 0
    out = engine.evaluate_only(cfg, evaluator, teacher, out_dir)
    if args.visrank:
        from common_eval import visualize_ranked_results

        dist = out["dist_rerank"] if "dist_rerank" in out else out["dist"]
        folder = out_dir / "visrank"
        written = visualize_ranked_results(dist, dataset.query, dataset.gallery, folder, topk=args.visrank,
                                           max_queries=args.visrank_queries)
        log.info(f"==> ranked lists of {len(written)} queries ({'re-ranked, ' if args.rerank else ''}"
                 f"top {args.visrank}) in {folder}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg, args, ckpt = resolve(argv)
        if args.visrank < 0 or args.visrank_queries < 0:
            raise ConfigError("--visrank and --visrank-queries must be >= 0")
    except AuxUSLError as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2
    if args.print_config:
        sys.stdout.write(cfg.dump())
        return 0
    return engine.guarded_main(cfg, args, lambda _: run(cfg, args, argv, ckpt))


if __name__ == "__main__":
    sys.exit(main())
