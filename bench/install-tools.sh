#!/usr/bin/env bash
# Tools the benchmarks drive (none is needed by `make test`). Debian packages:
#   postfix     -> smtp-sink, a fast SMTP sink written by Postfix's authors (postfix itself stays stopped)
#   nginx-light -> answers single Postmark `POST /email` calls with a fixed reply
#   wrk, hey    -> HTTP load generators (closed loop at N connections; fixed request rate)
# and py-spy from PyPI into .venv for profiles.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
need=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v hey >/dev/null 2>&1 || need+=(hey)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    $SUDO apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
    # The packages' own services are not wanted: the benchmarks start what they need.
    $SUDO service nginx stop >/dev/null 2>&1 || true
    $SUDO service postfix stop >/dev/null 2>&1 || true
fi
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import shutil,sys; sys.exit(0 if shutil.which("py-spy", path=".venv/bin") else 1)'; then
    .venv/bin/uv pip install --quiet --python .venv/bin/python py-spy
fi
echo "bench tools: $(command -v smtp-sink || echo /usr/sbin/smtp-sink) $(command -v nginx || echo /usr/sbin/nginx) $(command -v wrk) $(command -v hey)"
# bench/metrics_overhead.py compares prometheus-client with the OpenTelemetry SDK.
# The SDK is a dependency already: pin it to the lock, so this never moves the venv's packages.
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import opentelemetry.exporter.prometheus' 2>/dev/null; then
    .venv/bin/uv pip install --quiet --python .venv/bin/python --constraint requirements.lock opentelemetry-exporter-prometheus
fi
