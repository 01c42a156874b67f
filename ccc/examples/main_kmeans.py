"""3C's ``CCC/main_kmeans.py``: ``examples/train.py --cluster kmeans``, so that the README's
commands run as written

    python examples/main_kmeans.py --dataset market1501 --height 256 --width 128 ... --log-dir logs/log_kmeans
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402

if __name__ == "__main__":
    sys.exit(train.main(["--cluster", "kmeans", *sys.argv[1:]]))
