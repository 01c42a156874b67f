#!/usr/bin/env bash
# CDSM's adapter, called by ../reproduce.sh (see ../CONTRIBUTING.md):
#
#   cdsm/reproduce.sh TARGET --data-root DIR --logs-dir DIR [--smoke] [--nproc N] [-- train.py flags]
#
# TARGET: market | duke | msmt17 -> configs/<TARGET>.yml (the original README's command);
# --smoke adds configs/smoke.yml (CPU preset for the synthetic benchmark). Runs
# examples/train.py inside cdsm/ with --data-dir/--logs-dir; flags after -- come last and
# override everything. --nproc N > 1 starts N processes (one per GPU) with torchrun
# (DistributedDataParallel, see README "Multi-GPU").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${CDSM_PYTHON:-$HERE/../.venv/bin/python}"

die() { echo "cdsm/reproduce.sh: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "usage: cdsm/reproduce.sh market|duke|msmt17 --data-root DIR --logs-dir DIR [--smoke] [-- flags]"
target="$1"; shift
case "$target" in
  market|duke|msmt17) ;;
  *) die "cdsm reports market, duke and msmt17, not '$target'" ;;
esac

data_root="" logs="" smoke=0 nproc=1 pass=() resume=0 print_config=0 seed=() eval_ckpt=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-root) [[ $# -ge 2 ]] || die "--data-root needs a folder"; data_root="$2"; shift 2 ;;
    --data-root=*) data_root="${1#*=}"; shift ;;
    --logs-dir) [[ $# -ge 2 ]] || die "--logs-dir needs a folder"; logs="$2"; shift 2 ;;
    --logs-dir=*) logs="${1#*=}"; shift ;;
    --smoke) smoke=1; shift ;;
    --resume) resume=1; shift ;;
    --eval) [[ $# -ge 2 ]] || die "--eval needs a checkpoint"; eval_ckpt="$(realpath -m "$2")"; shift 2 ;;
    --print-config) print_config=1; shift ;;
    --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; seed=(--seed "$2"); shift 2 ;;
    --) shift; pass=("$@"); break ;;
    --nproc) [[ $# -ge 2 ]] || die "--nproc needs a number of processes"; nproc="$2"; shift 2 ;;
    --nproc=*) nproc="${1#*=}"; shift ;;
    *) die "unknown option '$1' (cdsm options: --smoke, --nproc N, --resume, --seed N, --print-config, --eval CHECKPOINT; put train.py flags after --)" ;;
  esac
done

[[ -x "$PY" ]] || die "no Python at $PY; run ./reproduce.sh setup first (or set CDSM_PYTHON)"
if [[ -n "$eval_ckpt" ]]; then  # evaluate a checkpoint (its own sizes and model), no training
  cmd=("$PY" examples/test.py -d "$target" --checkpoint "$eval_ckpt")
  [[ -n "$data_root" ]] && cmd+=(--data-root "$(realpath -m "$data_root")")
  cd "$HERE"
  exec "${cmd[@]}" "${pass[@]}"
fi
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive number of processes (GPUs), not '$nproc'"
launch=("$PY")
(( nproc > 1 && print_config == 0 )) && launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$nproc")
cmd=("${launch[@]}" examples/train.py --config "configs/$target.yml")
[[ $smoke == 1 ]] && cmd+=(--config configs/smoke.yml)
[[ -n "$data_root" ]] && cmd+=(--data-dir "$(realpath -m "$data_root")")
[[ -n "$logs" ]] && logs="$(realpath -m "$logs")" && cmd+=(--logs-dir "$logs")
[[ $resume == 1 ]] && cmd+=(--resume "${logs:-$HERE/logs}/checkpoint.pth.tar")
[[ $print_config == 1 ]] && cmd+=(--print-config)
cmd+=("${seed[@]}")
[[ $print_config == 1 ]] || echo "-> ${logs:-$HERE/logs}"
cd "$HERE"
exec "${cmd[@]}" "${pass[@]}"
