#!/usr/bin/env bash
# Write a containers.conf and a storage.conf of Herald's own into DIR, so podman never reads
# or changes the host's global configuration. Use them with
#   CONTAINERS_CONF=DIR/containers.conf CONTAINERS_STORAGE_CONF=DIR/storage.conf podman ...
#
# Images live in HERALD_PODMAN_ROOT (default /var/tmp/herald-podman), kept between runs so the
# base image and the build's layers are reused; the run-time state (runroot, tmp dir) lives in
# DIR and goes away with it. libpod's database stays beside the images (the default,
# graphroot/libpod): conmon's "podman container cleanup" finds it from --root, and with the
# database anywhere else that cleanup fails and every container exit waits 20 s for it.
#
# Settings this machine kind needs (measured):
#   runtime = "runc", cgroup_manager = "cgroupfs": crun and systemd refuse hybrid cgroups;
#   default_ulimits at the host's hard limits: higher defaults fail with
#     "setrlimit ... operation not permitted".
set -euo pipefail
dir=${1:?usage: podman-conf.sh DIR}
root=${HERALD_PODMAN_ROOT:-/var/tmp/herald-podman}
mkdir -p "$dir" "$root/storage"
dir=$(cd "$dir" && pwd)
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi

cat >"$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$root/storage"
runroot = "$dir/run"
CONF

cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
log_driver = "k8s-file"

[engine]
# conmon runs "podman container cleanup" when a container exits; it must read this file too.
conmon_env_vars = [
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "CONTAINERS_CONF=$dir/containers.conf",
  "CONTAINERS_STORAGE_CONF=$dir/storage.conf",
]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
tmp_dir = "$dir/tmp"
CONF
