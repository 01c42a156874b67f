#!/usr/bin/env bash
# Builds one method's image for real, without a registry or a Docker daemon, and runs its smoke
# run inside it:
#
#   docker/verify-local.sh METHOD        (root; needs podman, buildah and debootstrap:
#                                         apt-get install -y podman buildah debootstrap)
#
# 1. a Debian bookworm base is bootstrapped from the machine's apt mirror and imported as
#    localhost/debian-bookworm-minbase:local (once);
# 2. docker/METHOD.Dockerfile is built with `podman build --isolation=chroot` on that base (the
#    RUN steps really run: apt, pip, the Cython builds); a local wheel index of the machine, if
#    it has one (/opt/pypi...), is mounted read-only and offered to pip so that gigabytes of
#    wheels are not downloaded again;
# 3. `buildah run` executes the image's entry point with the method's smoke preset (podman run
#    is not available in this kind of sandbox) and the results.json it writes is printed.
# Too slow for CI (an image holds several GB); run it by hand and report the result.
set -euo pipefail

method="${1:?usage: docker/verify-local.sh METHOD (pul buc cdsm ccc auxusl)}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
file="$ROOT/docker/$method.Dockerfile"
[[ -f "$file" ]] || { echo "verify-local.sh: no $file" >&2; exit 2; }
for tool in podman buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "verify-local.sh: $tool is missing (apt-get install -y podman buildah debootstrap)" >&2; exit 2; }
done

base=localhost/debian-bookworm-minbase:local
if ! podman image exists "$base"; then
  mirror="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$(mktemp -d)"
  echo "==> bootstrapping $base from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | podman import - "$base" >/dev/null
  rm -rf "$rootfs"
fi

volumes=() extra="" ca=""
for d in /opt/pypi /opt/pypi-more /opt/wheels; do
  [[ -d "$d" ]] && volumes+=(--volume "$d:$d:ro")
done
# the host's CA bundle (a proxied network re-signs TLS; pip inside the build needs to trust it)
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  volumes+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro)
  ca=/etc/ssl/host-ca.crt
fi
# torch images: the default (CUDA-enabled) wheels, which the local index holds and which run on
# a CPU; the PUL image: its CPU variant (tensorflow-cpu, which the local index holds)
variant=gpu
[[ $method == pul ]] && variant=cpu
for d in /opt/pypi/simple /opt/pypi-more/simple; do
  [[ -d "$d" ]] && extra="$extra file://$d"
done

image="localhost/reid-$method:verify"
echo "==> building $image from $file"
start=$(date +%s)
podman build --isolation=chroot "${volumes[@]}" \
  --build-arg BASE="$base" --build-arg VARIANT="$variant" --build-arg PIP_CA_BUNDLE="$ca" \
  --build-arg PIP_EXTRA_INDEX_URL="${extra# }" \
  -f "$file" -t "$image" "$ROOT"
echo "==> built in $(( $(date +%s) - start )) s; size: $(podman image inspect "$image" --format '{{.Size}}' | awk '{printf "%.1f GB", $1/1e9}')"

declare -A SMOKE=([pul]="duke market" [buc]="market" [cdsm]="market" [ccc]="market" [auxusl]="dukevideo")
ctr="$(buildah from "$image")"
trap 'buildah rm "$ctr" >/dev/null' EXIT
echo "==> running: reproduce.sh $method ${SMOKE[$method]} --smoke (inside the image, as its user)"
start=$(date +%s)
# shellcheck disable=SC2086
buildah run --isolation=chroot --user 1000 "$ctr" -- /opt/reid/reproduce.sh "$method" ${SMOKE[$method]} --smoke
echo "==> smoke run finished in $(( $(date +%s) - start )) s"
buildah run --isolation=chroot "$ctr" -- sh -c 'find /logs -name results.json -exec cat {} \;'
