"""Evaluates a saved AuxUSL checkpoint (the original's RESUME ... TEST.EVAL_ONLY True).

    python examples/test.py --config-file configs/USL_MTCluster_Duke.yml \
        RESUME log/x/model_mAP_best.pth.tar [KEY VALUE ...]
    (or --checkpoint PATH; --data-root DIR = DATASETS.DIR, --logs-dir DIR = OUTPUT_DIR)

Same configuration as training (the dataset, the test-time TOC/SCP/STS terms, re-ranking with
TEST.RERANK.ENABLED True); the checkpoint's teacher weights ('state_dict', as the original's
files) are evaluated. The metrics are logged and written to OUTPUT_DIR/eval_results.json, with
each test-time auxiliary term's effect on its own when any is on.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train  # noqa: E402  (examples/train.py: the engine)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "RESUME" not in argv and not any(a.split("=", 1)[0] == "--checkpoint" for a in argv):
        print(
            "error: give the checkpoint to evaluate as RESUME <path> or --checkpoint <path> "
            "(e.g. RESUME log/x/model_mAP_best.pth.tar)",
            file=sys.stderr,
        )
        return 2
    return train.main(argv + ["TEST.EVAL_ONLY", "True"])


if __name__ == "__main__":
    sys.exit(main())
