#!/usr/bin/env bash
# Everything the suites need on a fresh Debian host (as root), idempotent: promtool, amtool,
# debootstrap, docker-compose and python3-venv; Go, Maven and a JDK for the offline images; a
# running Docker engine; nox in a venv of its own.
set -euo pipefail
here="$(dirname "$0")"
"$here/ensure-tools.sh"
"$here/ensure-build-tools.sh"
"$here/ensure-docker.sh"
"$here/ensure-nox.sh"
