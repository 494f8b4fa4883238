#!/usr/bin/env bash
# Make this machine able to build Parlour's image with podman (`make image` runs this).
# Idempotent: each step is skipped when its result is already there.
#  1. podman, runc and debootstrap from apt.
#  2. The Dockerfile's base image, python:3.11-slim-bookworm: pulled when a registry
#     answers; otherwise a stand-in made from Debian packages (debootstrap a minimal
#     bookworm, import it as local/bookworm:base, add Debian's Python 3.11 on top with
#     scripts/python-base.Dockerfile) and tagged with the same name, so the Dockerfile
#     builds unchanged here and from the registry elsewhere.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BASE_IMAGE="${BASE_IMAGE:-docker.io/library/python:3.11-slim-bookworm}"
ROOTFS_IMAGE=local/bookworm:base
ULIMITS=(--ulimit nofile=16384:16384 --ulimit nproc=4096:4096)

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "podman-base: installing ${missing[*]} with apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi

podman() { "$here/podman.sh" "$@"; }

if podman image exists "$BASE_IMAGE"; then
  exit 0
fi
if podman pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "podman-base: pulled $BASE_IMAGE"
  exit 0
fi
echo "podman-base: no registry answers; making $BASE_IMAGE from Debian packages"

# The Debian mirrors this machine's apt uses (deb822 .sources files or one-line lists).
apt_uris() {
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }'
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" { print $2 }'
}
mirror="$(apt_uris | grep -E '/debian/?$' | head -n1 || true)"
security="$(apt_uris | grep -E '/debian-security/?$' | head -n1 || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
security="${security:-http://deb.debian.org/debian-security}"

if ! podman image exists "$ROOTFS_IMAGE"; then
  rootfs="$(mktemp -d /var/tmp/parlour-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  echo "podman-base: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  # Slim like Debian's -slim images: no package caches, lists, docs, man pages or
  # translations, now or from later installs.
  cat > "$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" -c . | podman import -q - "$ROOTFS_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
fi

podman build --network host "${ULIMITS[@]}" \
  --build-arg DEBIAN_MIRROR="$mirror" --build-arg DEBIAN_SECURITY="$security" \
  -f "$here/python-base.Dockerfile" -t "$BASE_IMAGE" "$here"
echo "podman-base: $BASE_IMAGE is a local stand-in (Debian's python3 on bookworm)"
