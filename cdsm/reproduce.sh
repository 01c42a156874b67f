#!/usr/bin/env bash
# CDSM's adapter, called by ../reproduce.sh (see ../CONTRIBUTING.md):
#
#   cdsm/reproduce.sh TARGET --data-root DIR --logs-dir DIR [--smoke | --rehearse [--full-model]]
#                     [--amp off|bf16|fp16] [--nproc N] [--torchrun] [-- train.py flags]
#
# TARGET: market | duke | msmt17 -> configs/<TARGET>.yml (the original README's command);
# --smoke adds configs/smoke.yml (CPU preset for the synthetic benchmark); --rehearse adds
# configs/rehearse.yml (one epoch of 20 iterations from random init, the paper's sizes) and,
# unless --full-model (the preset's ResNet-50 at 256 x 128), configs/rehearse_small.yml
# (ResNet-18 at 64 x 32). --amp sets train.py's --amp. Runs examples/train.py inside cdsm/ with
# --data-dir/--logs-dir; flags after -- come last and override everything. --nproc N > 1 starts
# N processes (one per GPU) with torchrun (DistributedDataParallel, see README "Multi-GPU");
# --torchrun starts torchrun at --nproc 1 too.
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
rehearse=0 full_model=0 amp=() torchrun=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-root) [[ $# -ge 2 ]] || die "--data-root needs a folder"; data_root="$2"; shift 2 ;;
    --data-root=*) data_root="${1#*=}"; shift ;;
    --logs-dir) [[ $# -ge 2 ]] || die "--logs-dir needs a folder"; logs="$2"; shift 2 ;;
    --logs-dir=*) logs="${1#*=}"; shift ;;
    --smoke) smoke=1; shift ;;
    --rehearse) rehearse=1; shift ;;
    --full-model) full_model=1; shift ;;
    --amp) [[ $# -ge 2 ]] || die "--amp needs off, bf16 or fp16"; amp=(--amp "$2"); shift 2 ;;
    --amp=*) amp=(--amp "${1#*=}"); shift ;;
    --torchrun) torchrun=1; shift ;;
    --resume) resume=1; shift ;;
    --eval) [[ $# -ge 2 ]] || die "--eval needs a checkpoint"; eval_ckpt="$(realpath -m "$2")"; shift 2 ;;
    --print-config) print_config=1; shift ;;
    --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; seed=(--seed "$2"); shift 2 ;;
    --) shift; pass=("$@"); break ;;
    --nproc) [[ $# -ge 2 ]] || die "--nproc needs a number of processes"; nproc="$2"; shift 2 ;;
    --nproc=*) nproc="${1#*=}"; shift ;;
    *) die "unknown option '$1' (cdsm options: --smoke, --rehearse, --full-model, --amp MODE, --nproc N, --torchrun, --resume, --seed N, --print-config, --eval CHECKPOINT; put train.py flags after --)" ;;
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
(( smoke && rehearse )) && die "--smoke and --rehearse are two presets: choose one"
(( full_model && !rehearse )) && die "--full-model goes with --rehearse"
launch=("$PY")
(( (nproc > 1 || torchrun) && print_config == 0 )) && launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$nproc")
cmd=("${launch[@]}" examples/train.py --config "configs/$target.yml")
[[ $smoke == 1 ]] && cmd+=(--config configs/smoke.yml)
[[ $rehearse == 1 ]] && cmd+=(--config configs/rehearse.yml)
(( rehearse && !full_model )) && cmd+=(--config configs/rehearse_small.yml)
cmd+=("${amp[@]}")
[[ -n "$data_root" ]] && cmd+=(--data-dir "$(realpath -m "$data_root")")
[[ -n "$logs" ]] && logs="$(realpath -m "$logs")" && cmd+=(--logs-dir "$logs")
[[ $resume == 1 ]] && cmd+=(--resume "${logs:-$HERE/logs}/checkpoint.pth.tar")
[[ $print_config == 1 ]] && cmd+=(--print-config)
cmd+=("${seed[@]}")
[[ $print_config == 1 ]] || echo "-> ${logs:-$HERE/logs}"
cd "$HERE"
exec "${cmd[@]}" "${pass[@]}"
