#!/usr/bin/env bash
# The offline image build's own tools, when missing or too old: Go (Prometheus' module needs
# 1.26.7 or newer), Maven with a JDK (Kafka's jars) and patch (the exporter's receiver).
# Idempotent; installing needs root on a Debian host.
#
# Go comes from the Go module proxy, which serves every release as the module
# golang.org/toolchain: one zip, checked against the SHA-256 pinned here (the checksum database,
# sum.golang.org, is not reachable from every machine that reaches the proxy). Maven, the JDK
# and patch are Debian's packages.
set -euo pipefail

GO_MINIMUM=1.26.7
GO_VERSION=1.26.8
GO_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
GO_PROXY=${GO_PROXY_URL:-https://proxy.golang.org}
GO_ROOT=${CRM_CERT_GO_ROOT:-/usr/local/lib/crm-cert-go$GO_VERSION}
BIN_DIR=${CRM_CERT_BIN_DIR:-/usr/local/bin}

go_version() { "${1:-go}" env GOVERSION 2>/dev/null | sed 's/^go//'; }
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

found=$(command -v go >/dev/null && go_version || true)
if [ -n "$found" ] && at_least "$found" "$GO_MINIMUM"; then
  echo "ensure-build-tools: Go $found present"
else
  echo "ensure-build-tools: installing Go $GO_VERSION in $GO_ROOT (found: ${found:-none})"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  zip="$work/go.zip"
  # python3, not curl: a stock Debian has the one and not the other.
  python3 - "$GO_PROXY/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip" "$zip" <<'PY'
import sys, time, urllib.request
for attempt in range(3):
    try:
        urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
        break
    except OSError as error:
        print(f"ensure-build-tools: {sys.argv[1]}: {error}", file=sys.stderr)
        if attempt == 2:
            sys.exit(1)
        time.sleep(2 ** attempt)
PY
  echo "$GO_SHA256  $zip" | sha256sum --check --quiet
  python3 -m zipfile -e "$zip" "$work/unzipped"
  rm -rf "$GO_ROOT"
  mkdir -p "$(dirname "$GO_ROOT")" "$BIN_DIR"
  mv "$work/unzipped/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64" "$GO_ROOT"
  chmod +x "$GO_ROOT"/bin/* "$GO_ROOT"/pkg/tool/*/*  # zip entries carry no modes
  ln -sf "$GO_ROOT/bin/go" "$GO_ROOT/bin/gofmt" "$BIN_DIR/"
  echo "ensure-build-tools: $("$BIN_DIR/go" version)"
  now=$(go_version || true)
  if [ -z "$now" ] || ! at_least "$now" "$GO_MINIMUM"; then
    echo "ensure-build-tools: \`go\` on PATH is still ${now:-missing} ($(command -v go || true));" \
      "put $BIN_DIR first on PATH or remove the older Go" >&2
    exit 1
  fi
fi

missing=()
command -v mvn >/dev/null || missing+=(maven)
command -v javac >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v patch >/dev/null || missing+=(patch)
if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-build-tools: Maven, a JDK and patch present"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ensure-build-tools: installing ${missing[*]} needs root" >&2; exit 1; }
echo "ensure-build-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
