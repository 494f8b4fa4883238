#!/usr/bin/env bash
# podman as Parlour's scripts run it: our containers.conf, the runc runtime (crun fails
# on hybrid cgroups here). Pass --network host and explicit --ulimit flags to build/run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
exec podman --runtime "${PODMAN_RUNTIME:-runc}" "$@"
