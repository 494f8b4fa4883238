#!/usr/bin/env bash
# Build Parlour's image with podman: `make image` (IMAGE=parlour:latest by default).
# Sets up podman and the base image first (scripts/podman-base.sh), then builds in two
# passes so that this machine's pip configuration is lent to the build stages only:
#  1. the build stages, with the pip configuration, its constraints and index folders and
#     the CA certificates bind-mounted read-only (scripts/pip_mounts.py);
#  2. the whole Dockerfile without any mount: the build stages come from the layer cache
#     of pass 1, and the final image holds no trace of the mounts (not even mount points).
# llama.cpp compiles in the deps stage (15-20 min on 2 cores) and stays cached until its
# step changes; a code change rebuilds only the last layers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tag="${1:-parlour:latest}"
jobs="${LLAMA_CPP_BUILD_JOBS:-2}"

scripts/podman-base.sh
flags=(--network host --ulimit nofile=16384:16384 --ulimit nproc=4096:4096
       --format docker --layers --build-arg "LLAMA_CPP_BUILD_JOBS=$jobs")
mapfile -t mounts < <(python3 scripts/pip_mounts.py)

start=$(date +%s)
scripts/podman.sh build "${flags[@]}" "${mounts[@]}" --target app -t parlour-build:latest .
scripts/podman.sh build "${flags[@]}" -t "$tag" .
elapsed=$(( $(date +%s) - start ))
size=$(scripts/podman.sh image inspect --format '{{.Size}}' "$tag")
echo "built $tag in ${elapsed} s: $(( size / 1000000 )) MB"
