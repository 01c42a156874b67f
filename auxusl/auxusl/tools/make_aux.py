"""Regenerates AuxUSL's auxiliary information from a dataset's own frame names.

    python -m auxusl.tools.make_aux --dataset dukevideo --data-root DIR --out pickles \
        [--mode dense --dense-step 40]
    python -m auxusl.tools.make_aux --config-file configs/USL_MTCluster_Duke.yml --data-root DIR \
        --out pickles [KEY VALUE ...]

Writes the six relation files (TOC, SCP, STS for training and for query x gallery; format in
``auxusl/auxinfo/store.py``) and ``aux_info.json`` into ``--out``. With ``--config-file`` the
dataset, DATASETS.MODE and DATASETS.DENSE_STEP come from the configuration (the training
tracklets must be cut exactly as training will cut them); explicit flags win. DATASETS.DIR
is the data root unless ``--data-root`` is given. Only DukeMTMC-VideoReID has time stamps.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .. import datasets
from ..auxinfo import write_aux
from ..errors import AuxUSLError, short_message

log = logging.getLogger("auxusl.make_aux")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m auxusl.tools.make_aux",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="dukevideo (= duke); mars has no time stamps")
    p.add_argument("--data-root", help="folder holding DukeMTMC-VideoReID/ (DATASETS.DIR)")
    p.add_argument("--name", help="dataset folder name (DATASETS.NAME, default DukeMTMC-VideoReID)")
    p.add_argument("--mode", choices=("all", "dense"), help="training tracklets whole or in chunks")
    p.add_argument("--dense-step", type=int, help="chunk length in dense mode")
    p.add_argument("--out", required=True, help="output folder (PICKLE_PATH of the training run)")
    p.add_argument("--config-file", help="take dataset, mode and dense step from this AuxUSL config")
    p.add_argument("--sts-rounds", type=int, default=32, help="chance draws of the STS estimator")
    p.add_argument("--sts-seed", type=int, default=0)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides (with --config-file)")
    return p.parse_args(argv)


def regenerate_command(data_root, name, mode, dense_step, out) -> str:
    return (
        f"python -m auxusl.tools.make_aux --dataset dukevideo --data-root {data_root} --name {name} "
        f"--mode {mode} --dense-step {dense_step} --out {out}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        target, mode, step, root, name = "duke", "dense", 40, args.data_root, "DukeMTMC-VideoReID"
        if args.config_file:
            from ..config import setup_cfg

            cfg = setup_cfg(args.config_file, args.opts)
            target, mode, step = cfg.DATASETS.TARGET, cfg.DATASETS.MODE, cfg.DATASETS.DENSE_STEP
            root, name = root or cfg.DATASETS.DIR, cfg.DATASETS.NAME
        elif args.opts:
            raise AuxUSLError("KEY VALUE overrides need --config-file")
        target = args.dataset or target
        mode = args.mode or mode
        step = args.dense_step or step
        name = args.name or name
        if datasets.canonical(target) == "mars":
            raise AuxUSLError(
                "MARS frame names carry no time stamps (only the frame index in the tracklet): "
                "AuxUSL's auxiliary information (TOC, STS, SCP) exists for DukeMTMC-VideoReID only"
            )
        if not root:
            raise AuxUSLError("--data-root is required (the folder holding DukeMTMC-VideoReID/)")
        t0 = time.perf_counter()
        dataset = datasets.create("duke", Path(root) / name, mode=mode, dense_step=step)
        summary = write_aux(dataset, args.out, args.sts_rounds, args.sts_seed)
        log.info(
            f"==> auxiliary information for {summary['train_tracklets']} training / "
            f"{summary['query_tracklets']} query / {summary['gallery_tracklets']} gallery tracklets "
            f"({mode}, step {step}): {summary['train_cannot_link_pairs']} cannot-link pairs, "
            f"{summary['query_gallery_overlaps']} overlapping query-gallery pairs; written to {args.out} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        return 0
    except (AuxUSLError, ValueError) as exc:
        print(f"error: {short_message(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
