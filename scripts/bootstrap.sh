#!/usr/bin/env bash
# Everything the suites need on a fresh Debian host (as root), idempotent: promtool, amtool,
# debootstrap and docker-compose; a running Docker engine; nox.
set -euo pipefail
here="$(dirname "$0")"
"$here/ensure-tools.sh"
"$here/ensure-docker.sh"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "nox>=2024.10"
