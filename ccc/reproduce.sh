#!/usr/bin/env bash
# 3C's adapter, called by ../reproduce.sh (see ../CONTRIBUTING.md):
#
#   ccc/reproduce.sh TARGET --data-root DIR --logs-dir DIR [--smoke | --rehearse [--full-model]]
#                    [--cluster hdc|dbscan|kmeans] [--nproc N] [--torchrun] [--amp off|bf16|fp16]
#                    [-- train.py flags]
#
# TARGET: market | msmt17 | veri. --cluster picks the entry point (default hdc; dbscan and
# kmeans are the paper's "3C (DBSCAN)" and "3C (K-means)" rows) and configs/<cluster>/<TARGET>.yml
# (the original's command); --smoke adds configs/smoke.yml and configs/smoke_<cluster>.yml (CPU
# preset for the synthetic benchmark). Runs examples/train.py inside ccc/ with --root-dir and
# --log-dir "<logs-dir>-<cluster>"; flags after -- come last and override everything. --nproc N > 1
# starts N processes (one per GPU) with torchrun (README "Multi-GPU"); --torchrun uses torchrun even
# for one process (DDP with a one-process group). --rehearse adds configs/rehearse.yml (one epoch
# of 20 iterations from random initialisation, paper sizes otherwise) and, unless --full-model,
# configs/rehearse_small.yml (ResNet-18 at 64 x 32). --amp: train.py's --amp.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${CCC_PYTHON:-$HERE/../.venv/bin/python}"

die() { echo "ccc/reproduce.sh: $*" >&2; exit 2; }

usage="usage: ccc/reproduce.sh market|msmt17|veri --data-root DIR --logs-dir DIR [--smoke | --rehearse [--full-model]] [--cluster hdc|dbscan|kmeans] [--nproc N] [--torchrun] [--amp off|bf16|fp16] [-- flags]"
[[ $# -ge 1 ]] || die "$usage"
target="$1"; shift
case "$target" in
  market|msmt17|veri) ;;
  *) die "3C reports market, msmt17 and veri, not '$target'" ;;
esac

data_root="" logs="" smoke=0 cluster=hdc nproc=1 pass=() resume=0 print_config=0 seed=() eval_ckpt=""
rehearse=0 full_model=0 torchrun=0 amp=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-root) [[ $# -ge 2 ]] || die "--data-root needs a folder"; data_root="$2"; shift 2 ;;
    --data-root=*) data_root="${1#*=}"; shift ;;
    --logs-dir) [[ $# -ge 2 ]] || die "--logs-dir needs a folder"; logs="$2"; shift 2 ;;
    --logs-dir=*) logs="${1#*=}"; shift ;;
    --cluster) [[ $# -ge 2 ]] || die "--cluster needs hdc, dbscan or kmeans"; cluster="$2"; shift 2 ;;
    --cluster=*) cluster="${1#*=}"; shift ;;
    --smoke) smoke=1; shift ;;
    --rehearse) rehearse=1; shift ;;
    --full-model) full_model=1; shift ;;
    --torchrun) torchrun=1; shift ;;
    --amp) [[ $# -ge 2 ]] || die "--amp needs off, bf16 or fp16"; amp=(--amp "$2"); shift 2 ;;
    --amp=*) amp=(--amp "${1#*=}"); shift ;;
    --resume) resume=1; shift ;;
    --eval) [[ $# -ge 2 ]] || die "--eval needs a checkpoint"; eval_ckpt="$(realpath -m "$2")"; shift 2 ;;
    --print-config) print_config=1; shift ;;
    --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; seed=(--seed "$2"); shift 2 ;;
    --nproc) [[ $# -ge 2 ]] || die "--nproc needs a number of processes"; nproc="$2"; shift 2 ;;
    --nproc=*) nproc="${1#*=}"; shift ;;
    --) shift; pass=("$@"); break ;;
    *) die "unknown option '$1' (3C's method options are --cluster hdc|dbscan|kmeans, --nproc N, --torchrun, --amp off|bf16|fp16, --rehearse, --full-model, --resume, --seed N, --print-config and --eval CHECKPOINT; put train.py flags after --)" ;;
  esac
done
case "$cluster" in
  hdc|dbscan|kmeans) ;;
  *) die "--cluster must be hdc, dbscan or kmeans, not '$cluster'" ;;
esac
[[ ${#amp[@]} == 0 || "${amp[1]}" =~ ^(off|bf16|fp16)$ ]] || die "--amp must be off, bf16 or fp16, not '${amp[1]}'"
(( rehearse && smoke )) && die "--rehearse and --smoke exclude each other (the rehearsal is the paper preset, shortened)"
(( full_model && ! rehearse )) && die "--full-model goes with --rehearse (the paper runs use the full model already)"

[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive number of processes (GPUs), not '$nproc'"
[[ -x "$PY" ]] || die "no Python at $PY; run ./reproduce.sh setup first (or set CCC_PYTHON)"
if [[ -n "$eval_ckpt" ]]; then  # evaluate a checkpoint (its own sizes and model), no training
  cmd=("$PY" examples/test.py --dataset "$target" --checkpoint "$eval_ckpt")
  [[ -n "$data_root" ]] && cmd+=(--data-root "$(realpath -m "$data_root")")
  cd "$HERE"
  exec "${cmd[@]}" "${pass[@]}"
fi
launch=("$PY")
(( (nproc > 1 || torchrun) && print_config == 0 )) && launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$nproc")
cmd=("${launch[@]}" examples/train.py --config "configs/$cluster/$target.yml")
if [[ $smoke == 1 ]]; then
  cmd+=(--config configs/smoke.yml)
  [[ -f "$HERE/configs/smoke_$cluster.yml" ]] && cmd+=(--config "configs/smoke_$cluster.yml")
fi
if [[ $rehearse == 1 ]]; then
  cmd+=(--config configs/rehearse.yml)
  [[ $full_model == 1 ]] || cmd+=(--config configs/rehearse_small.yml)
fi
cmd+=("${amp[@]}")
[[ -n "$data_root" ]] && cmd+=(--root-dir "$(realpath -m "$data_root")")
run_dir=""
[[ -n "$logs" ]] && run_dir="$(realpath -m "$logs")-$cluster" && cmd+=(--log-dir "$run_dir")
if [[ $resume == 1 ]]; then
  [[ -n "$run_dir" ]] || die "--resume needs --logs-dir (the folder of the run to continue)"
  cmd+=(--resume "$run_dir/checkpoint.pth.tar")
fi
[[ $print_config == 1 ]] && cmd+=(--print-config)
cmd+=("${seed[@]}")
[[ $print_config == 1 || -z "$run_dir" ]] || echo "-> $run_dir"
cd "$HERE"
exec "${cmd[@]}" "${pass[@]}"
