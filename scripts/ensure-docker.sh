#!/usr/bin/env bash
# Make sure a Docker engine answers on this host: install Debian's docker.io when no engine is
# present, start dockerd when it is not running, and wait until it answers. Idempotent.
# Needs root on a Debian host. A laptop with Docker Desktop never needs this script.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}

die() { echo "ensure-docker: $*" >&2; exit 1; }
engine_answers() { docker info >/dev/null 2>&1; }

if engine_answers; then
  echo "ensure-docker: engine already answers ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "no Docker engine answers and installing one needs root"

if ! command -v dockerd >/dev/null 2>&1; then
  echo "ensure-docker: installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null \
    || die "apt-get install docker.io failed"
fi

# pidof (sysvinit-utils, essential), not pgrep: procps is not on every Debian.
if ! pidof dockerd >/dev/null; then
  echo "ensure-docker: starting dockerd (log: $DOCKERD_LOG)"
  # containerd is started by dockerd itself when no system containerd runs.
  nohup dockerd >"$DOCKERD_LOG" 2>&1 &
fi

for _ in $(seq "$WAIT_SECONDS"); do
  if engine_answers; then
    echo "ensure-docker: engine answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  if ! pidof dockerd >/dev/null; then
    die "dockerd exited during start-up; last lines of $DOCKERD_LOG:
$(tail -n 15 "$DOCKERD_LOG" 2>/dev/null)"
  fi
  sleep 1
done
die "dockerd did not answer within ${WAIT_SECONDS}s; last lines of $DOCKERD_LOG:
$(tail -n 15 "$DOCKERD_LOG" 2>/dev/null)"
