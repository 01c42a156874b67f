#!/usr/bin/env bash
# The original run.sh, same settings (size_penalty 0.003 since the authors' fix, merge_percent 0.05).
# Run from buc/: sh ./run.sh   (datasets under $REID_DATA, else ../data; see README.md)
dataset=market1501
#dataset=duke
#dataset=mars
#dataset=DukeMTMC-VideoReID

batchSize=16
size_penalty=0.003
merge_percent=0.05

logs=logs/$dataset

PYTHON="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
"$PYTHON" examples/train.py --dataset $dataset --logs_dir $logs \
              -b $batchSize --size_penalty $size_penalty -mp $merge_percent "$@"
