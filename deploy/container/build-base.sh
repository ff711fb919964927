#!/usr/bin/env bash
# Build a Debian bookworm base image with Python locally, for machines that reach Debian's
# archive but no container registry (where `python:3.12-slim-bookworm` cannot be pulled):
#   mmdebstrap --variant=minbase (python3, python3-venv, ca-certificates) | podman import
# Debian bookworm's python3 is 3.11, which Herald supports. Use the result with
#   podman build --build-arg BASE_IMAGE=localhost/herald-base:bookworm ...
#
# usage: build-base.sh [TAG]   (default localhost/herald-base:bookworm)
# Podman's configuration: CONTAINERS_CONF / CONTAINERS_STORAGE_CONF when set, otherwise
# podman-conf.sh's in a temporary directory. Nothing is done when TAG exists and was made by
# this version of the script (a label holds the script's checksum).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tag=${1:-localhost/herald-base:bookworm}
recipe=$(sha256sum "$0" | cut -c1-16)

work=$(mktemp -d /var/tmp/herald-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -z "${CONTAINERS_CONF:-}" ]; then
    bash "$here/podman-conf.sh" "$work/podman"
    export CONTAINERS_CONF=$work/podman/containers.conf
    export CONTAINERS_STORAGE_CONF=$work/podman/storage.conf
fi

if podman image exists "$tag" \
    && [ "$(podman image inspect --format '{{ index .Labels "org.herald.base-recipe" }}' "$tag")" = "$recipe" ]; then
    echo "base image $tag is up to date"
    exit 0
fi

# The host's own Debian sources (the archive it reaches), else the public mirrors.
sources=()
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sources=(/etc/apt/sources.list.d/debian.sources)
else
    sources=(
        "deb http://deb.debian.org/debian bookworm main"
        "deb http://deb.debian.org/debian bookworm-updates main"
        "deb http://deb.debian.org/debian-security bookworm-security main"
    )
fi

echo "building base image $tag with mmdebstrap"
# shellcheck disable=SC2016 # "$1" in the hook is the new root, expanded by mmdebstrap's shell
mmdebstrap \
    --quiet \
    --mode=root \
    --variant=minbase \
    --include=python3,python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/*.log "$1"/var/lib/apt/lists/*' \
    bookworm "$work/rootfs.tar" "${sources[@]}" </dev/null

podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.herald.base-recipe=$recipe" \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$tag" >/dev/null
echo "base image $tag: $(podman image inspect --format '{{.Size}}' "$tag") bytes"
