"""3C's ``CCC/main_dbscan.py``: ``examples/train.py --cluster dbscan``, so that the README's
commands run as written

    python examples/main_dbscan.py --dataset market1501 --height 256 --width 128 ... --log-dir logs/log_dbscan
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402

if __name__ == "__main__":
    sys.exit(train.main(["--cluster", "dbscan", *sys.argv[1:]]))
