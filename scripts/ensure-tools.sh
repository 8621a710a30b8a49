#!/usr/bin/env bash
# Install the host tools the suites need, when missing: promtool and amtool (Debian's Prometheus
# 2.42 and Alertmanager 0.25, the oldest versions the configs must load on), debootstrap (for the
# offline base image), docker-compose (to check stack/compose.yaml) and Chromium's headless shell
# (to open reports/index.html as a reader does), and curl, which the external mode's fault commands
# for the project's own stack run (harness/external.py). Idempotent; needs root on a Debian host.
set -euo pipefail

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
python3 -c "import ensurepip" >/dev/null 2>&1 || missing+=(python3-venv) # for nox's venv
command -v curl >/dev/null || missing+=(curl)
# harness/page_check.py's BROWSERS: any one of them will do.
command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null ||
  command -v google-chrome >/dev/null || missing+=(chromium-headless-shell)

if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-tools: promtool, amtool, debootstrap, docker-compose, python3-venv, curl and" \
    "chromium present"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ensure-tools: installing ${missing[*]} needs root" >&2; exit 1; }
echo "ensure-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d keeps the packages' own services from starting: the suites run their own.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
