#!/usr/bin/env bash
# The one entry point of the reproduction monorepo.
#
#   ./reproduce.sh [demo]                 set-up, synthetic benchmark, every method at smoke scale, table
#   ./reproduce.sh setup                  create/update .venv with the pinned stack, build extensions
#   ./reproduce.sh test [--fast] [-- pytest args]
#                                         set-up, then every test folder in its own pytest process
#   ./reproduce.sh pul SOURCE TARGET [opts] [-- train.py flags]
#   ./reproduce.sh METHOD DATASET [opts] [-- train.py flags]     METHOD: buc cdsm ccc auxusl
#   ./reproduce.sh table [LOGDIR]         every results.json under LOGDIR (default logs/) as Markdown
#   ./reproduce.sh report [LOGDIR] [--out FILE]
#                                         one self-contained HTML page of every run under LOGDIR
#   ./reproduce.sh extract METHOD --checkpoint CKPT --images DIR --out feats.npy
#                                         features of a folder of images (tracklets) with a trained model
#   ./reproduce.sh export METHOD --checkpoint CKPT --out model.onnx
#                                         the trained model for deployment (PUL: a TF SavedModel folder)
#   ./reproduce.sh rehearse METHOD DATASET (pul: SOURCE TARGET) [--full-model] [--amp MODE]
#                                         the paper preset on synthetic data of the real dataset's size,
#                                         small backbone, one short epoch: seconds per phase, peak memory
#   ./reproduce.sh gpu-check              every method's paper preset for a few iterations on one CUDA
#                                         GPU (fp32 and AMP, DDP at --nproc 1); says so without a GPU
#
# Options: --smoke (CPU preset on the synthetic benchmark), --data-root DIR (default $REID_DATA,
# else ./data), --logs-dir DIR (default $REID_LOGS, else ./logs), --resume (continue the run in
# the task's folder), --seed N, --print-config (print the resolved configuration and exit),
# --eval CHECKPOINT (evaluate a checkpoint on DATASET's test set, no training); method options
# (e.g. ccc's --cluster; --nproc N: N GPUs under torchrun for buc cdsm ccc auxusl) are passed on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
METHODS=(pul buc cdsm ccc auxusl)
SYNTHETIC="${REID_SYNTHETIC:-$ROOT/data/synthetic}"   # the synthetic benchmark (demo, --smoke)
LOGS="${REID_LOGS:-$ROOT/logs}"

# dataset short name -> common_eval.synthetic layout (rehearsal data)
declare -A LAYOUT=(
  [market]=market1501 [duke]=dukemtmcreid [msmt17]=msmt17 [cuhk03]=cuhk03 [veri]=veri776 [mars]=mars
  [dukevideo]=dukevideo
)
# clustering steps of a full paper run (the rehearsal's projection): PUL 25 iterations, BUC
# 1/merge_percent - 2 = 18 merges, CDSM 50 epochs, 3C 60 epochs, AuxUSL 40 epochs
declare -A CLUSTERINGS=([pul]=25 [buc]=18 [cdsm]=50 [ccc]=60 [auxusl]=40)
REHEARSAL="${REID_REHEARSAL:-$ROOT/data/rehearsal}"   # synthetic datasets with the real counts
# dataset short name -> folder under the data root
declare -A FOLDER=(
  [market]=Market-1501-v15.09.15 [duke]=DukeMTMC-reID [msmt17]=MSMT17_V1 [cuhk03]=CUHK03
  [veri]=VeRi [mars]=MARS [dukevideo]=DukeMTMC-VideoReID
)
# datasets each method reports (from its paper and code)
declare -A DATASETS=(
  [pul]="market duke cuhk03" [buc]="market duke mars dukevideo" [cdsm]="market duke msmt17"
  [ccc]="market msmt17 veri" [auxusl]="mars dukevideo"
)
# what the demo runs for each method
declare -A DEMO=(
  [pul]="duke market" [buc]="market" [cdsm]="market" [ccc]="market" [auxusl]="dukevideo"
)

die() { echo "reproduce.sh: $*" >&2; exit 2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

# --------------------------------------------------------------------------------------- set-up
stamp_of() {
  # everything that changes what the set-up installs or builds
  (cd "$ROOT" && cat requirements.txt constraints.txt common_eval/setup.py \
     common_eval/common_eval/*.pyx common_eval/common_eval/*.h */pyproject.toml */setup.py \
     ccc/ccc/hdc/*.pyx 2>/dev/null
   "${PYTHON:-python3}" --version) | sha256sum | cut -d' ' -f1
}

setup() {
  # a Docker image is set up at build time with its method's stack only
  [[ -f "$VENV/.reproduce-image" ]] && return 0
  local stamp
  stamp="$(stamp_of)"
  if [[ -x "$PY" && -f "$VENV/.reproduce-stamp" && "$(cat "$VENV/.reproduce-stamp")" == "$stamp" ]] \
     && "$PY" -c 'import common_eval' 2>/dev/null; then
    return 0
  fi
  local py="${PYTHON:-python3}"
  command -v "$py" >/dev/null || die "no $py on PATH; Python >= 3.10 is required (set PYTHON=...)"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "$py is $("$py" --version 2>&1); Python >= 3.10 is required (set PYTHON=...)"
  echo "==> set-up: $VENV (pinned stack, editable packages, Cython extensions)" >&2
  [[ -x "$PY" ]] || "$py" -m venv "$VENV"
  # plain pip: the machine's pip configuration may serve the large wheels from local disk;
  # no cache: where they are downloaded (torch with its CUDA libraries is several GB), a cached
  # copy beside the installed one would need that much disk again
  "$PY" -m pip install -q --disable-pip-version-check --no-cache-dir -r "$ROOT/requirements.txt"
  "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation --config-settings editable_mode=compat -e "$ROOT/common_eval"
  local m
  for m in "${METHODS[@]}"; do
    if [[ -f "$ROOT/$m/pyproject.toml" ]]; then
      "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --config-settings editable_mode=compat -e "$ROOT/$m"
    fi
  done
  "$PY" -c 'import common_eval, common_eval._rank, common_eval._knn' \
    || die "common_eval's extensions did not build; see the pip output above"
  echo "$stamp" > "$VENV/.reproduce-stamp"
  echo "==> set-up done" >&2
}

# ---------------------------------------------------------------------------------------- tests
run_tests() {
  local fast=0 extra=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --fast) fast=1; shift ;;
      --) shift; extra=("$@"); break ;;
      *) die "test: unknown option '$1' (use: test [--fast] [-- pytest args])" ;;
    esac
  done
  setup
  local folders=(common_eval) m
  for m in "${METHODS[@]}" repo docker; do [[ -d "$ROOT/tests/$m" ]] && folders+=("$m"); done
  local report; report="$(mktemp -d)"
  local failed_folders=() f rc
  if [[ $fast == 1 ]]; then
    # the quick suite: two folders at a time, one thread each (its tests are short and mostly
    # start processes), in two queues of about equal length; the logs are printed in order
    local out; out="$(mktemp -d)"
    queue() {
      local g
      for g in "$@"; do
        [[ -d "$ROOT/tests/$g" ]] || continue
        (cd "$ROOT" && OMP_NUM_THREADS=1 "$PY" -m pytest "tests/$g" -p no:cacheprovider \
            --junitxml="$report/$g.xml" -m "not slow" "${extra[@]}") > "$out/$g.log" 2>&1
        echo $? > "$out/$g.rc"
      done
    }
    queue common_eval buc ccc repo &
    local first=$!
    queue pul cdsm auxusl docker
    wait "$first" || true
    for f in "${folders[@]}"; do
      echo "==> tests/$f"
      cat "$out/$f.log"
      rc="$(cat "$out/$f.rc" 2>/dev/null || echo 1)"
      if [[ $rc != 0 && $rc != 5 ]]; then failed_folders+=("$f"); fi
    done
    rm -rf "$out"
  else
    for f in "${folders[@]}"; do
      echo "==> tests/$f"
      set +e
      (cd "$ROOT" && "$PY" -m pytest "tests/$f" -p no:cacheprovider --junitxml="$report/$f.xml" "${extra[@]}")
      rc=$?
      set -e
      # 5 = no test collected: not a failure of the folder
      if [[ $rc != 0 && $rc != 5 ]]; then failed_folders+=("$f"); fi
    done
  fi
  "$PY" - "$report" "${failed_folders[@]}" <<'EOF'
import sys, pathlib, xml.etree.ElementTree as ET
report, failed_folders = pathlib.Path(sys.argv[1]), sys.argv[2:]
tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for xml in sorted(report.glob("*.xml")):
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    c = {k: sum(int(s.get(k, 0)) for s in suites) for k in tot}
    for k in tot:
        tot[k] += c[k]
    print(f"   tests/{xml.stem}: {c['tests'] - c['failures'] - c['errors'] - c['skipped']} passed, "
          f"{c['failures'] + c['errors']} failed, {c['skipped']} skipped")
if failed_folders:
    print("   failing folders: " + " ".join(failed_folders))
passed = tot["tests"] - tot["failures"] - tot["errors"] - tot["skipped"]
failed = tot["failures"] + tot["errors"]
if failed == 0 and failed_folders:
    failed = len(failed_folders)  # a folder that crashed before reporting counts as a failure
print(f"tests: {passed} passed, {failed} failed, {tot['skipped']} skipped")
sys.exit(1 if failed else 0)
EOF
}

# ------------------------------------------------------------------------------------- datasets
ensure_synthetic() {
  # idempotent: datasets whose manifest matches are kept, folders it did not write are never touched
  if [[ ! -f "$SYNTHETIC/.complete" ]]; then
    echo "==> generating the synthetic benchmark in $SYNTHETIC"
    "$PY" -m common_eval.synthetic --benchmark "$SYNTHETIC"
    touch "$SYNTHETIC/.complete"
  fi
}

check_dataset() {  # check_dataset ROOT SHORTNAME
  local root="$1" name="$2"
  [[ -d "$root" ]] || die "data root '$root' does not exist (set --data-root DIR or REID_DATA)"
  [[ -d "$root/${FOLDER[$name]}" ]] \
    || die "dataset '$name' not found: expected the folder '$root/${FOLDER[$name]}' (see README, 'Datasets')"
}

# ------------------------------------------------------------------------------------ a method run
run_method() {
  local method="$1"; shift
  local supported="${DATASETS[$method]}"
  local names=() smoke=0 data_root="" logs="$LOGS" opts=() pass=() print_config=0
  local nsets=1; [[ $method == pul ]] && nsets=2
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --smoke) smoke=1; shift ;;
      --resume) opts+=("$1"); shift ;;
      --print-config) print_config=1; opts+=("$1"); shift ;;
      --seed|--eval) [[ $# -ge 2 ]] || die "$1 needs a value"; opts+=("$1" "$2"); shift 2 ;;
      --data-root) [[ $# -ge 2 ]] || die "--data-root needs a folder"; data_root="$2"; shift 2 ;;
      --data-root=*) data_root="${1#*=}"; shift ;;
      --logs-dir) [[ $# -ge 2 ]] || die "--logs-dir needs a folder"; logs="$2"; shift 2 ;;
      --logs-dir=*) logs="${1#*=}"; shift ;;
      --) shift; pass=("$@"); break ;;
      -*) opts+=("$1"); if [[ $# -ge 2 && "$2" != -* ]]; then opts+=("$2"); shift; fi; shift ;;
      *) names+=("$1"); shift ;;
    esac
  done
  if [[ ${#names[@]} != "$nsets" ]]; then
    if [[ $method == pul ]]; then die "usage: ./reproduce.sh pul SOURCE TARGET [--smoke] (datasets: $supported)"; fi
    die "usage: ./reproduce.sh $method DATASET [--smoke] (datasets: $supported)"
  fi
  local n
  for n in "${names[@]}"; do
    [[ " $supported " == *" $n "* ]] || die "$method does not support dataset '$n' (valid: $supported)"
  done
  if [[ $method == pul && "${names[0]}" == "${names[1]}" ]]; then
    die "pul needs two different datasets: SOURCE (labelled) and TARGET (unlabelled)"
  fi
  [[ -x "$ROOT/$method/reproduce.sh" ]] || die "method '$method' is not built yet in this checkout"
  setup
  local target="${names[-1]}" source_root target_root task
  if [[ $smoke == 1 && -z "$data_root" ]]; then
    [[ $print_config == 1 ]] || ensure_synthetic
    source_root="$SYNTHETIC/a"
    target_root="$SYNTHETIC/a"
    [[ $method == pul ]] && target_root="$SYNTHETIC/b"   # adaptation: domain a -> domain b
  else
    [[ -n "$data_root" ]] || data_root="${REID_DATA:-$ROOT/data}"
    source_root="$data_root"; target_root="$data_root"
  fi
  # --print-config prints the resolved configuration without touching data or logs
  [[ $print_config == 1 ]] || check_dataset "$target_root" "$target"
  task="$target"
  if [[ $method == pul ]]; then
    [[ $print_config == 1 ]] || check_dataset "$source_root" "${names[0]}"
    task="${names[0]}-$target"
  fi
  [[ $smoke == 1 ]] && task="$task-smoke"
  local args=(--data-root "$target_root" --logs-dir "$logs/$method/$task")
  [[ $method == pul ]] && args+=(--source "${names[0]}" --source-root "$source_root")
  [[ $smoke == 1 ]] && args+=(--smoke)
  [[ $print_config == 1 ]] || echo "==> $method on ${names[*]}$([[ $smoke == 1 ]] && echo ' (smoke)')"
  # the subproject's adapter maps these onto its own train.py flags
  "$ROOT/$method/reproduce.sh" "$target" "${args[@]}" "${opts[@]}" -- "${pass[@]}"
}

# -------------------------------------------------------------------------------- rehearsal
ensure_real_size() {  # ensure_real_size SHORTNAME: the synthetic dataset with the real counts
  "$PY" -m common_eval.synthetic --layout "${LAYOUT[$1]}" --root "$REHEARSAL" --counts real --reuse \
    --overwrite >&2 || die "could not generate the rehearsal dataset '$1' in $REHEARSAL"
}

rehearse() {  # rehearse METHOD DATASET|SOURCE TARGET [--full-model] [--amp M] [--nproc N] [--torchrun]
  local method="${1:-}"
  [[ -n "$method" && " ${METHODS[*]} " == *" $method "* ]] \
    || die "usage: ./reproduce.sh rehearse METHOD DATASET [--full-model] [--amp off|bf16|fp16] (METHOD: ${METHODS[*]})"
  shift
  local names=() opts=() pass=() n nsets=1 print_config=0
  [[ $method == pul ]] && nsets=2
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --full-model|--torchrun) opts+=("$1"); shift ;;
      --print-config) print_config=1; shift ;;
      --amp|--nproc) [[ $# -ge 2 ]] || die "$1 needs a value"; opts+=("$1" "$2"); shift 2 ;;
      --) shift; pass=("$@"); break ;;
      -*) die "rehearse: unknown option '$1' (valid: --full-model --amp MODE --nproc N --torchrun --print-config -- FLAGS)" ;;
      *) names+=("$1"); shift ;;
    esac
  done
  [[ ${#names[@]} == "$nsets" ]] || die "usage: ./reproduce.sh rehearse $method $([[ $method == pul ]] && echo 'SOURCE TARGET' || echo DATASET) (datasets: ${DATASETS[$method]})"
  for n in "${names[@]}"; do
    [[ " ${DATASETS[$method]} " == *" $n "* ]] || die "$method does not support dataset '$n' (valid: ${DATASETS[$method]})"
  done
  [[ $method == pul && "${names[0]}" == "${names[1]}" ]] && die "pul needs two different datasets: SOURCE TARGET"
  setup
  local target="${names[-1]}" task="${names[*]}"
  local logs; logs="$LOGS/rehearsal/$method-${task// /-}-$(date +%Y%m%d-%H%M%S)"
  local args=(--data-root "$REHEARSAL" --logs-dir "$logs" --rehearse)
  [[ $method == pul ]] && args+=(--source "${names[0]}" --source-root "$REHEARSAL")
  if [[ $print_config == 1 ]]; then   # the rehearsal's resolved configuration; no data, no logs
    "$ROOT/$method/reproduce.sh" "$target" "${args[@]}" "${opts[@]}" --print-config -- "${pass[@]}"
    return
  fi
  for n in "${names[@]}"; do ensure_real_size "$n"; done
  echo "==> rehearsal: $method on ${names[*]} (paper preset, real-size synthetic data in $REHEARSAL)"
  "$PY" -m common_eval.rehearse --logs "$logs" --label "$method ${names[*]}" \
    --clusterings "${CLUSTERINGS[$method]}" -- "$ROOT/$method/reproduce.sh" "$target" "${args[@]}" "${opts[@]}" \
    -- "${pass[@]}"
}

gpu_check() {
  setup
  if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu-check: no CUDA GPU is visible to PyTorch here (torch.cuda.is_available() is False): nothing was checked"
    return 0
  fi
  "$PY" -c 'import torch; print("gpu-check on", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)'
  local failed=() m amp t0
  t0=$(date +%s)
  # paper backbone and input, random initialisation, one epoch of at most 20 iterations, under
  # torchrun with one process (DDP with NCCL), fp32 then fp16 autocast
  for m in buc cdsm ccc auxusl; do
    local ds=market; [[ $m == auxusl ]] && ds=dukevideo
    for amp in off fp16; do
      echo "==> gpu-check: $m $ds amp=$amp"
      rehearse "$m" "$ds" --full-model --nproc 1 --torchrun --amp "$amp" || failed+=("$m/$amp")
    done
  done
  echo "==> gpu-check: pul duke market (TensorFlow)"
  if "$PY" -c 'import sys, tensorflow as tf; sys.exit(0 if tf.config.list_physical_devices("GPU") else 1)' 2>/dev/null; then
    # one k-means initialisation: PUL's k-means runs on the CPU, which this check is not about
    rehearse pul duke market --full-model -- --kmeans-n-init 1 || failed+=("pul")
  else
    echo "gpu-check: TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty)"
    failed+=("pul (no TensorFlow GPU)")
  fi
  echo "gpu-check: $(( $(date +%s) - t0 )) s"
  if [[ ${#failed[@]} -gt 0 ]]; then
    echo "gpu-check FAILED: ${failed[*]}" >&2
    return 1
  fi
  echo "gpu-check: every run finished with finite losses"
}

demo() {
  setup
  ensure_synthetic
  local m built=() missing=()
  for m in "${METHODS[@]}"; do
    if [[ -x "$ROOT/$m/reproduce.sh" ]]; then built+=("$m"); else missing+=("$m"); fi
  done
  # each demo gets its own folder: a run folder is never written over (README, "Runs, resume ...")
  local demo_logs
  demo_logs="$LOGS/demo/$(date +%Y%m%d-%H%M%S)"
  for m in "${built[@]}"; do
    # shellcheck disable=SC2086
    run_method "$m" ${DEMO[$m]} --smoke --logs-dir "$demo_logs"
  done
  echo
  if [[ ${#built[@]} -gt 0 ]]; then
    "$PY" -m common_eval.table "$demo_logs"
    echo "runs of this demo: $demo_logs"
    if "$PY" -m common_eval.report "$demo_logs" --out "$demo_logs/report.html" >/dev/null; then
      echo "report of this demo: $demo_logs/report.html (open it in a browser)"
    fi
    echo "curves: $VENV/bin/tensorboard --logdir $LOGS"
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "not built yet: ${missing[*]}"
  fi
}

# ------------------------------------------------------------------------------------- dispatch
cmd="${1:-demo}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  demo) demo ;;
  setup) setup ;;
  test) run_tests "$@" ;;
  table) setup; "$PY" -m common_eval.table "${1:-$LOGS}" ;;
  report)
    setup
    if [[ $# -gt 0 && "$1" != -* ]]; then "$PY" -m common_eval.report "$@"; else "$PY" -m common_eval.report "$LOGS" "$@"; fi ;;
  extract|export)
    [[ $# -ge 1 && " ${METHODS[*]} " == *" $1 "* ]] \
      || die "usage: ./reproduce.sh $cmd METHOD --checkpoint CKPT ... (METHOD: ${METHODS[*]})"
    m="$1"; shift
    [[ "${1:-}" == "--" ]] && shift
    setup
    # run from the caller's folder, so that relative paths mean what the user typed
    "$PY" "$ROOT/$m/examples/$cmd.py" "$@" ;;
  rehearse) rehearse "$@" ;;
  gpu-check) [[ $# == 0 ]] || die "gpu-check takes no argument"; gpu_check ;;
  -h|--help|help) usage ;;
  *)
    if [[ " ${METHODS[*]} " == *" $cmd "* ]]; then
      run_method "$cmd" "$@"
    else
      die "unknown command or method '$cmd' (valid: demo setup test table report extract export rehearse gpu-check ${METHODS[*]})"
    fi ;;
esac
