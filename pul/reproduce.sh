#!/usr/bin/env bash
# PUL adapter, called by ../reproduce.sh:
#   pul/reproduce.sh TARGET --data-root DIR --logs-dir DIR --source SOURCE --source-root DIR
#                    [--smoke | --rehearse [--full-model]] [--amp off]
#                    [train.py options, e.g. --selection paper, --mode semi, --resume] -- [train.py flags]
# Trains the baseline on SOURCE into LOGS/baseline/ (a finished one there with the same settings
# is reused), then runs PUL on TARGET; writes LOGS/results.json. Presets: configs/TARGET.yaml
# (the original's K for that target) and, with --smoke, configs/smoke.yaml. --rehearse: the paper
# preset cut to one baseline epoch and one iteration of one epoch, <= 20 batches each, from random
# init (configs/rehearse.yaml), on the smoke's ResNet-18 at 64x32 (configs/rehearse_small.yaml)
# unless --full-model keeps the paper's ResNet-50 at 224x224. PUL runs in float32 under TensorFlow:
# --amp takes only 'off', and --torchrun does not apply (several GPUs are mirrored in one process).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
die() { echo "pul/reproduce.sh: $*" >&2; exit 2; }

[[ $# -ge 1 && "$1" != -* ]] || die "usage: pul/reproduce.sh TARGET --data-root DIR --logs-dir DIR --source SOURCE --source-root DIR [--smoke | --rehearse [--full-model]] [-- train.py flags]"
target="$1"; shift
data_root="" logs="" source="" source_root="" smoke=0 rehearse=0 full=0 amp=off opts=() pass=() eval_ckpt=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-root) data_root="$2"; shift 2 ;;
    --logs-dir) logs="$2"; shift 2 ;;
    --source) source="$2"; shift 2 ;;
    --source-root) source_root="$2"; shift 2 ;;
    --smoke) smoke=1; shift ;;
    --rehearse) rehearse=1; shift ;;
    --full-model) full=1; shift ;;
    --amp) [[ $# -ge 2 ]] || die "--amp needs a value (off)"; amp="$2"; shift 2 ;;
    --amp=*) amp="${1#*=}"; shift ;;
    --torchrun) die "--torchrun does not apply to PUL (TensorFlow, not PyTorch): one process mirrors every visible GPU" ;;
    --eval) [[ $# -ge 2 ]] || die "--eval needs a checkpoint (.keras)"; eval_ckpt="$(realpath -m "$2")"; shift 2 ;;
    --) shift; pass=("$@"); break ;;
    *) opts+=("$1"); shift ;;
  esac
done
declare -A PRESET=([market]=market [market1501]=market [duke]=duke [dukemtmcreid]=duke [cuhk03]=cuhk03)
[[ -n "${PRESET[$target]:-}" ]] || die "PUL does not support target '$target' (valid: market duke cuhk03)"
[[ -n "$source" ]] || die "PUL needs a labelled source dataset: --source NAME --source-root DIR"
[[ -n "${PRESET[$source]:-}" ]] || die "PUL does not support source '$source' (valid: market duke cuhk03)"
[[ -n "$data_root" && -n "$logs" ]] || die "--data-root and --logs-dir are required"
[[ $smoke == 1 && $rehearse == 1 ]] && die "--smoke and --rehearse are two different presets; pass one"
[[ $full == 1 && $rehearse == 0 ]] && die "--full-model goes with --rehearse"
[[ "$amp" == off ]] || die "--amp $amp: PUL has no mixed precision (Keras on TensorFlow, float32); only --amp off"
source_root="${source_root:-$data_root}"
printing=0; [[ " ${opts[*]} ${pass[*]} " == *" --print-config "* ]] && printing=1
if [[ $printing == 0 ]]; then  # --print-config touches no data: the roots need not exist
  data_root="$(cd "$data_root" && pwd)" || die "data root '$data_root' does not exist"
  source_root="$(cd "$source_root" && pwd)" || die "source root '$source_root' does not exist"
fi
logs="$(realpath -m "$logs")"

if [[ -n "$eval_ckpt" ]]; then  # evaluate a checkpoint on the target's test set, no training
  cd "$HERE"
  export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=tensorflow
  exec "$PY" examples/test.py --checkpoint "$eval_ckpt" --dataset "$target" --data-root "$data_root" "${pass[@]}"
fi
configs=(--config "configs/${PRESET[$target]}.yaml")
[[ $smoke == 1 ]] && configs+=(--config configs/smoke.yaml)
[[ $rehearse == 1 ]] && configs+=(--config configs/rehearse.yaml)
[[ $rehearse == 1 && $full == 0 ]] && configs+=(--config configs/rehearse_small.yaml)
[[ $printing == 1 ]] || echo "-> $logs"
cd "$HERE"
export PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=tensorflow
exec "$PY" examples/train.py "${configs[@]}" --mode unsupervised --dataset "$target" --data-root "$data_root" \
  --source "$source" --source-root "$source_root" --logs-dir "$logs" "${opts[@]}" "${pass[@]}"
