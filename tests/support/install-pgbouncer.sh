#!/usr/bin/env bash
# PgBouncer from Debian's archive, for tests/e2e/test_pgbouncer.py (bookworm: 1.18).
# Idempotent: does nothing (and asks apt nothing) when it is installed. The package's own
# service is not wanted (the test starts a PgBouncer of its own): stopped if it started.
set -euo pipefail
if dpkg-query -W -f='${Status}' pgbouncer 2>/dev/null | grep -q "install ok installed"; then
    echo "pgbouncer: $(/usr/sbin/pgbouncer --version | head -n 1)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
echo "installing pgbouncer"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
$SUDO service pgbouncer stop >/dev/null 2>&1 || true
echo "pgbouncer: $(/usr/sbin/pgbouncer --version | head -n 1)"
