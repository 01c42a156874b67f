# BUC (PyTorch, Open-ReID style): ./reproduce.sh buc in an image with only its own stack.
#   docker build -f docker/buc.Dockerfile -t reid-buc .                      (GPU, default)
#   docker build -f docker/buc.Dockerfile --build-arg VARIANT=cpu \
#                --build-arg BASE=debian:bookworm-slim -t reid-buc:cpu .      (CPU)
#   docker run --gpus all --shm-size=16g -v DATA:/data -v LOGS:/logs reid-buc market
ARG BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
FROM ${BASE}

# gpu: torch wheels from PyPI (they carry CUDA); cpu: the CPU-only wheels
ARG VARIANT=gpu
# build-time only: an extra package index (e.g. a local mirror) and a CA bundle for a proxied
# network (docker/verify-local.sh uses both); neither is kept in the image
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_CA_BUNDLE=""
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    REID_DATA=/data REID_LOGS=/logs REID_SYNTHETIC=/data/synthetic \
    XDG_CACHE_HOME=/logs/.cache
# XDG_CACHE_HOME: BUC's converted dataset layout (links to the frames in /data, which may be
# mounted read-only) is kept on the logs volume and reused by the next container

# distribution packages follow the base image's release (pinning them would tie the file to one base)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc g++ libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 reid \
 && mkdir -p /data /logs /opt/reid && chown reid:reid /data /logs /opt/reid

WORKDIR /opt/reid
USER 1000
COPY --chown=reid:reid constraints.txt reproduce.sh ./
COPY --chown=reid:reid common_eval/ common_eval/
COPY --chown=reid:reid buc/ buc/

# the pinned stack of this method only, then the packages; the Cython kernels build here
RUN if [ -n "$PIP_CA_BUNDLE" ]; then export PIP_CERT="$PIP_CA_BUNDLE"; fi \
 && if [ -z "$PIP_EXTRA_INDEX_URL" ]; then unset PIP_EXTRA_INDEX_URL; fi \
 && python3 -m venv .venv \
 && set -- \
 && if [ "$VARIANT" = cpu ]; then set -- --extra-index-url https://download.pytorch.org/whl/cpu; fi \
 && .venv/bin/pip install -c constraints.txt setuptools Cython numpy \
 && .venv/bin/pip install "$@" -c constraints.txt -r buc/requirements.txt \
 && .venv/bin/pip install -c constraints.txt --no-build-isolation ./common_eval ./buc \
 && .venv/bin/python -c "import common_eval._rank, common_eval._knn, buc" \
 && touch .venv/.reproduce-image

VOLUME ["/data", "/logs"]
ENTRYPOINT ["/opt/reid/reproduce.sh", "buc"]
CMD ["market", "--smoke"]
