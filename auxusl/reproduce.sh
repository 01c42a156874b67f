#!/usr/bin/env bash
# AuxUSL's adapter, called by ../reproduce.sh (see ../CONTRIBUTING.md):
#
#   auxusl/reproduce.sh mars|dukevideo --data-root DIR --logs-dir DIR [--smoke] [--aux on|off|both]
#                       [--nproc N] [--torchrun] [--amp off|bf16|fp16]
#                       [--rehearse [--full-model]] [-- KEY VALUE ...]
#
# TARGET -> configs/USL_MTCluster.yml (mars) or configs/USL_MTCluster_Duke.yml (dukevideo), the
# original configs; --smoke -> configs/smoke_<target>.yml (their CPU preset, _BASE_ = the original).
# --aux selects the paper's rows: off = "Ours-" (no auxiliary information), on = "Ours" (the Duke
# config's SCP + STS in training, TOC + SCP + STS at test). Default: the original config's choice
# (mars: off; dukevideo: on), and for dukevideo with --smoke both runs. Each run has its own log
# folder (<logs-dir>-noaux / <logs-dir>-aux for dukevideo) and results.json (variant ours- / ours).
# With aux on, the auxiliary information is regenerated from the frame names first
# (python -m auxusl.tools.make_aux, into <log folder>/aux) unless it is already there.
# --nproc N > 1 starts N training processes (one per GPU) with torchrun (README "Multi-GPU");
# --torchrun uses torchrun at --nproc 1 too (DDP over one process). --amp sets MODEL.AMP.
# --rehearse: the paper config with the REHEARSE overrides below (one epoch of at most 20
# iterations, random init; ResNet-18 at 64x32 unless --full-model); sizes, k1/k2, eps, batches and
# the whole evaluation stay those of the paper (README "Rehearsal").
# Runs examples/train.py inside auxusl/; KEY VALUE pairs after -- come last and override all.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${AUXUSL_PYTHON:-$HERE/../.venv/bin/python}"

die() { echo "auxusl/reproduce.sh: $*" >&2; exit 2; }

[[ $# -ge 1 ]] || die "usage: auxusl/reproduce.sh mars|dukevideo --data-root DIR --logs-dir DIR [--smoke] [--aux on|off|both] [-- KEY VALUE ...]"
target="$1"; shift
case "$target" in
  mars) config=configs/USL_MTCluster.yml ;;
  dukevideo) config=configs/USL_MTCluster_Duke.yml ;;
  *) die "auxusl reports mars and dukevideo, not '$target'" ;;
esac

data_root="" logs="" smoke=0 aux="" nproc=1 pass=() resume=0 print_config=0 seed=() eval_ckpt=""
rehearse=0 full_model=0 torchrun=0 amp=()
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
    --seed) [[ $# -ge 2 ]] || die "--seed needs a number"; seed=(SEED "$2"); shift 2 ;;
    --aux) [[ $# -ge 2 ]] || die "--aux needs on, off or both"; aux="$2"; shift 2 ;;
    --aux=*) aux="${1#*=}"; shift ;;
    --) shift; pass=("$@"); break ;;
    --nproc) [[ $# -ge 2 ]] || die "--nproc needs a number of processes"; nproc="$2"; shift 2 ;;
    --nproc=*) nproc="${1#*=}"; shift ;;
    --torchrun) torchrun=1; shift ;;
    --amp) [[ $# -ge 2 ]] || die "--amp needs off, bf16 or fp16"; amp=(MODEL.AMP "$2"); shift 2 ;;
    --rehearse) rehearse=1; shift ;;
    --full-model) full_model=1; shift ;;
    *) die "unknown option '$1' (auxusl options: --smoke, --aux on|off|both, --nproc N, --torchrun, --amp off|bf16|fp16, --rehearse, --full-model, --resume, --seed N, --print-config, --eval CHECKPOINT; put KEY VALUE pairs after --)" ;;
  esac
done

if [[ -z "$aux" ]]; then
  if [[ $target == mars ]]; then aux=off; elif [[ $smoke == 1 ]]; then aux=both; else aux=on; fi
fi
case "$aux" in
  on|off|both) ;;
  *) die "--aux must be on, off or both, not '$aux'" ;;
esac
[[ $target == mars && $aux != off ]] && die "MARS has no time stamps: auxiliary information (--aux on) exists for dukevideo only"
[[ "$nproc" =~ ^[1-9][0-9]*$ ]] || die "--nproc must be a positive number of processes (GPUs), not '$nproc'"
[[ ${#amp[@]} == 0 || ${amp[1]} =~ ^(off|bf16|fp16)$ ]] || die "--amp must be off, bf16 or fp16, not '${amp[1]}'"
[[ $full_model == 1 && $rehearse == 0 ]] && die "--full-model goes with --rehearse"
[[ $rehearse == 1 && $smoke == 1 ]] && die "--rehearse runs the paper config: drop --smoke"
[[ $rehearse == 1 && -n "$eval_ckpt" ]] && die "--rehearse trains: it does not go with --eval"
[[ -x "$PY" ]] || die "no Python at $PY; run ./reproduce.sh setup first (or set AUXUSL_PYTHON)"
launch=("$PY")
(( (nproc > 1 || torchrun == 1) && print_config == 0 )) &&
  launch=("$PY" -m torch.distributed.run --standalone --nproc_per_node="$nproc")
[[ $smoke == 1 ]] && config="configs/smoke_${target}.yml"
[[ -n "$data_root" ]] || data_root="$HERE/datasets"
data_root="$(realpath -m "$data_root")"
suffix=""; [[ $smoke == 1 ]] && suffix=-smoke; [[ $rehearse == 1 ]] && suffix=-rehearse

# the rehearsal: the paper run's cost at one epoch (random init: nothing is downloaded)
REHEARSE=()
if [[ $rehearse == 1 ]]; then
  REHEARSE=(MODEL.BACKBONE.PRETRAIN False OPTIM.EPOCHS 1 DATALOADER.MAX_ITERS 20 SCALE rehearsal)
  [[ $full_model == 1 ]] || REHEARSE+=(MODEL.ARCH resnet18bnn INPUT.SIZE_TRAIN "[64, 32]" INPUT.SIZE_TEST "[64, 32]")
fi
[[ -n "$logs" ]] || logs="$HERE/log/$target$suffix"
logs="$(realpath -m "$logs")"

AUX_OFF=(CLUSTER.ICDBSCAN_OPTION False CLUSTER.CCE_OPTION False CLUSTER.STR_OPTION False
         TEST.OVERLAP_CONSTRAINT False TEST.CCE_OPTION False TEST.STR_OPTION False)

cd "$HERE"
if [[ -n "$eval_ckpt" ]]; then
  # evaluate a checkpoint, no training: with the test-time auxiliary terms when --aux is on (the
  # default of a dukevideo paper run; the aux files the training wrote beside the checkpoint,
  # <its folder>/aux), without them otherwise; the metrics go to <its folder>/eval/
  ckpt_dir="$(dirname "$eval_ckpt")"
  extra=("${AUX_OFF[@]}")
  if [[ $aux == on ]]; then
    [[ -f "$ckpt_dir/aux/aux_info.json" ]] || die "--aux on needs the auxiliary information in $ckpt_dir/aux (written by the training run)"
    extra=(PICKLE_PATH "$ckpt_dir/aux")
  fi
  # the checkpoint carries the configuration it was trained with: no preset file over it
  exec "$PY" examples/test.py --checkpoint "$eval_ckpt" DATASETS.DIR "$data_root" \
    OUTPUT_DIR "$ckpt_dir/eval" "${extra[@]}" "${pass[@]}"
fi
run_one() {  # run_one on|off LOGDIR
  local mode="$1" dir="$2" extra=()
  if [[ $mode == off ]]; then
    extra=("${AUX_OFF[@]}")
  elif [[ $target == dukevideo ]]; then
    if [[ $print_config == 0 && ! -f "$dir/aux/aux_info.json" ]]; then
      "$PY" -m auxusl.tools.make_aux --config-file "$config" --data-root "$data_root" --out "$dir/aux" \
        "${pass[@]}"
    fi
    extra=(PICKLE_PATH "$dir/aux")
  fi
  local flags=()
  [[ $resume == 1 ]] && extra+=(RESUME "$dir/checkpoint_new.pth.tar")
  if [[ $print_config == 1 ]]; then
    flags=(--print-config)
  else
    echo "==> auxusl $target ($([[ $mode == on ]] && echo 'Ours, with' || echo 'Ours-, without') auxiliary information) -> $dir"
  fi
  "${launch[@]}" examples/train.py --config-file "$config" "${flags[@]}" DATASETS.DIR "$data_root" OUTPUT_DIR "$dir" \
    "${extra[@]}" "${seed[@]}" "${REHEARSE[@]}" "${amp[@]}" "${pass[@]}"
}

if [[ $target == mars ]]; then
  run_one off "$logs"
elif [[ $aux == both ]]; then
  run_one off "$logs-noaux"
  run_one on "$logs-aux"
else
  run_one "$aux" "$logs-$([[ $aux == on ]] && echo aux || echo noaux)"
fi
