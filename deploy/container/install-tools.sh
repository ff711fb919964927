#!/usr/bin/env bash
# The tools tests/e2e/test_container.py drives, from Debian's archive:
#   podman      -> builds and runs the image (rootful, configured by podman-conf.sh)
#   runc        -> the OCI runtime (crun refuses hosts with hybrid cgroups)
#   mmdebstrap  -> builds the local base image when no container registry is reachable
# Idempotent: does nothing (and asks apt nothing) when all three are installed.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
need=()
for package in podman runc mmdebstrap; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "container tools: $(podman --version), $(runc --version | head -n 1), mmdebstrap $(mmdebstrap --version | awk '{print $2}')"
