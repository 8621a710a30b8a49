#!/usr/bin/env bash
# nox in a virtual environment of its own, linked as /usr/local/bin/nox: stock Debian's python3
# refuses `pip install` outside a venv (PEP 668, externally managed). Idempotent; the link needs
# root (without it, use "$NOX_VENV/bin/nox").
set -euo pipefail

NOX_VENV=${NOX_VENV:-/opt/crm-cert/nox}
NOX_REQUIREMENT="nox>=2024.10"

if ! "$NOX_VENV/bin/python" -c "import nox" >/dev/null 2>&1; then
  echo "ensure-nox: installing $NOX_REQUIREMENT in $NOX_VENV"
  rm -rf "$NOX_VENV"
  python3 -m venv "$NOX_VENV"
  "$NOX_VENV/bin/pip" install --quiet --disable-pip-version-check "$NOX_REQUIREMENT"
fi
if [ "$(id -u)" = 0 ]; then
  ln -sf "$NOX_VENV/bin/nox" /usr/local/bin/nox
fi
echo "ensure-nox: $("$NOX_VENV/bin/nox" --version 2>&1) in $NOX_VENV"
