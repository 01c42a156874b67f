#!/usr/bin/env bash
# Adapter called by ../reproduce.sh (see ../CONTRIBUTING.md):
#   buc/reproduce.sh TARGET --data-root DIR --logs-dir DIR [--smoke | --rehearse [--full-model]]
#                    [--nproc N] [--torchrun] [--amp off|bf16|fp16] [train.py options] -- [train.py flags]
# TARGET: market duke mars dukevideo. Paper preset = the original run.sh (batch 16, size_penalty
# 0.003, merge_percent 0.05); --smoke adds the CPU preset (configs/smoke-*.yaml); --rehearse runs
# the paper preset for one merge step (step 0: one epoch of at most 20 batches, evaluation, merge)
# on a random-init ResNet-18 at 64x32, --full-model keeping ResNet-50 at 256x128 (README
# "Rehearsal"); --amp is train.py's; --nproc N > 1 starts N training processes (one per GPU) with
# torchrun (README "Multi-GPU"), --torchrun even one.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-$HERE/../.venv/bin/python}"

die() { echo "buc/reproduce.sh: $*" >&2; exit 2; }
[[ $# -ge 1 ]] || die "usage: buc/reproduce.sh TARGET --data-root DIR --logs-dir DIR [--smoke] [-- flags]"
target="$1"; shift
case "$target" in
  market) dataset=market1501 ;;
  duke) dataset=duke ;;
  mars) dataset=mars ;;
  dukevideo) dataset=DukeMTMC-VideoReID ;;
  *) die "BUC does not support dataset '$target' (valid: market duke mars dukevideo)" ;;
esac

args=(--dataset "$dataset")
extra=()
logs=""
data_root=""
eval_ckpt=""
smoke=0
rehearse=0
full_model=0
torchrun=0
nproc=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-root) [[ $# -ge 2 ]] || die "--data-root needs a folder"; data_root="$(realpath -m "$2")"; args+=(--data_dir "$data_root"); shift 2 ;;
    --logs-dir) [[ $# -ge 2 ]] || die "--logs-dir needs a folder"; logs="$(realpath -m "$2")"; args+=(--logs_dir "$logs"); shift 2 ;;
    --smoke) args+=(--smoke); smoke=1; shift ;;
    --rehearse) rehearse=1; shift ;;
    --full-model) full_model=1; shift ;;
    --torchrun) torchrun=1; shift ;;
    --amp) [[ $# -ge 2 ]] || die "--amp needs off, bf16 or fp16"; args+=(--amp "$2"); shift 2 ;;
    --eval) [[ $# -ge 2 ]] || die "--eval needs a checkpoint"; eval_ckpt="$(realpath -m "$2")"; shift 2 ;;
    --nproc) [[ $# -ge 2 ]] || die "--nproc needs a number of processes"; nproc="$2"; shift 2 ;;
    --nproc=*) nproc="${1#*=}"; shift ;;
    --source|--source-root) die "BUC is purely unsupervised: it takes no source dataset" ;;
    --) shift; extra+=("$@"); break ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [[ -n "$eval_ckpt" ]]; then  # evaluate a checkpoint (its own sizes and model), no training
  cmd=("$PY" examples/test.py -d "$dataset" --checkpoint "$eval_ckpt")
  [[ -n "$data_root" ]] && cmd+=(--data-root "$data_root")
  cd "$HERE"
  exec "${cmd[@]}" "${extra[@]}"
fi
# the paper preset is run.sh's; with --smoke the preset in configs/ sets -mp and the sizes
if [[ $smoke == 0 ]]; then
  args+=(-b 16 --size_penalty 0.003 -mp 0.05)
fi
(( full_model && !rehearse )) && die "--full-model goes with --rehearse"
if (( rehearse )); then   # the paper preset's sizes; only the model, its start and the length change
  (( smoke )) && die "--rehearse runs the paper preset: drop --smoke"
  args+=(--pretrained none --initial_steps 1 --max_iters 20 --run_steps 1 --scale rehearsal)
  (( full_model )) || args+=(-a resnet18 --height 64 --width 32)
fi
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive number of processes (GPUs), not '$nproc'"
launch=("$PY")
# --print-config resolves the configuration in one process
(( nproc > 1 || torchrun )) && [[ " ${extra[*]} " != *" --print-config "* ]] && launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$nproc")
[[ -z "$logs" || " ${extra[*]} " == *" --print-config "* ]] || echo "-> $logs"
cd "$HERE"
exec "${launch[@]}" examples/train.py "${args[@]}" "${extra[@]}"
