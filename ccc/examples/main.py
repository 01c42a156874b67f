"""3C's ``CCC/main.py``: ``examples/train.py --cluster hdc``, so that the README's
commands run as written

    python examples/main.py --dataset market1501 --height 256 --width 128 ... --log-dir logs/log
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train  # noqa: E402

if __name__ == "__main__":
    sys.exit(train.main(["--cluster", "hdc", *sys.argv[1:]]))
