# syntax=docker/dockerfile:1
# One image for both GPU processes of a session: `robot-parl learner ...` and `robot-parl actor ...`
# (the entrypoint is robot-parl; the compose file picks the subcommand). It holds torch with CUDA and the
# `learn` and `vla` extras; no ROS, no torchvision, no timm.
#
# Build from the repository root:
#   docker build -f docker/learner.Dockerfile -t robot-parl/learner .

# The torch wheel brings its own CUDA libraries (cuBLAS, cuDNN, NCCL as pip packages); the CUDA image
# supplies the matching runtime base, and the host only needs a driver new enough for this CUDA
# (13.0: driver >= 580). Ubuntu 24.04: Python 3.12.
FROM nvidia/cuda:13.0.0-runtime-ubuntu24.04

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ARG DEBIAN_FRONTEND=noninteractive

# Python from Ubuntu (pinned to the 3.12 release 24.04 ships; the wildcard admits its security
# rebuilds); everything else goes into a virtualenv.
RUN apt-get update \
    && apt-get install -y --no-install-recommends "python3=3.12.3-*" "python3-venv=3.12.3-*" \
    && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN python3 -m venv "$VIRTUAL_ENV"

# torch first, pinned, from PyTorch's CUDA wheel index (the project's install order: the pin before the
# extras, so no extra's range can pull another build). cu130 must be one of the CUDA variants PyTorch
# publishes for TORCH_VERSION; change both build arguments together.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"

# The repository with the learn and vla extras, installed as a package (robot specs and calibration boards
# are package data). configs/ and policies/ are copied too, so that the relative paths in session configs
# resolve from the working directory /app.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY robot_parl ./robot_parl
COPY configs ./configs
COPY policies ./policies
# Naming torch again holds the pin: pip keeps the CUDA build installed above and does not resolve a
# different one for the extras. The python line fails the build if torchvision or timm came in through
# a dependency (they break transformers' imports, and the VLA's vision towers are robot_parl's own).
# It also fails if the learner, the actor or the VLA cannot import. DL3013 asks to pin what pip installs: "."
# is this checkout, and torch is pinned.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[learn,vla]" "torch==$TORCH_VERSION" \
    && python -c "import importlib.util as u; bad = [m for m in ('torchvision', 'timm') if u.find_spec(m)]; \
assert not bad, f'{bad} must not be installed'; \
import robot_parl.runtime.learner, robot_parl.runtime.actor, robot_parl.models.vla.policy"

# Weights and tokenizers come from the local paths that policy cards name. Nothing is fetched from a hub at
# run time, and these make any attempt fail loudly instead of downloading.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# A non-root user with a fixed uid (chown 10001 a host directory to bind-mount it on runs/). USER names it
# by number so that a runtime can see the image is not root. runs/ (the learner's episode store and
# checkpoints, the actor's journal) is created here and owned by that user, so a named volume mounted
# on it starts out writable for it.
RUN useradd --create-home --shell /bin/bash --uid 10001 --user-group parl \
    && mkdir -p /app/runs \
    && chown parl:parl /app/runs
USER 10001

ENTRYPOINT ["robot-parl"]
CMD ["--help"]
