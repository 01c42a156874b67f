#!/usr/bin/env bash
# Builds every method's image (or the ones named): docker/build.sh [--cpu] [METHOD...]
#   GPU images by default (CUDA-enabled wheels on an NVIDIA CUDA base); --cpu builds the CPU
#   variant on debian:bookworm-slim. Set DOCKER=podman to use podman.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER="${DOCKER:-docker}"
args=() tag=""
if [[ "${1:-}" == --cpu ]]; then
  shift
  args=(--build-arg VARIANT=cpu --build-arg BASE=debian:bookworm-slim)
  tag=":cpu"
fi
methods=("$@")
[[ ${#methods[@]} -gt 0 ]] || methods=(pul buc cdsm ccc auxusl)
for m in "${methods[@]}"; do
  [[ -f "$ROOT/docker/$m.Dockerfile" ]] || { echo "build.sh: no docker/$m.Dockerfile" >&2; exit 2; }
  echo "==> reid-$m$tag"
  "$DOCKER" build "${args[@]}" -f "$ROOT/docker/$m.Dockerfile" -t "reid-$m$tag" "$ROOT"
done
