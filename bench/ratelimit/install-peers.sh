#!/usr/bin/env bash
# Installs the peers for the rate-limit benchmark into <repo>/.tools/bin (gitignored):
#   - ghz                     (gRPC load generator)         -> .tools/bin/ghz
#   - envoyproxy/ratelimit    (the Go reference service)    -> .tools/bin/envoy-ratelimit
# Usage: install-peers.sh [ghz] [envoy-ratelimit]   (default: both). scripts/setup.sh installs envoy-ratelimit
# alone, for the differential test (test/integration/server/ratelimit-peer.test.ts).
# Idempotent: a binary whose stamp (.tools/bin/<name>.version) matches the pinned version is
# kept as is. Needs only Go and the Go module proxy.
#
# Versions are pinned, newest the module proxy served when this was written:
#   - ghz: the proxy's version *list* is stale (`go list -m -versions` shows only v0.93.0 and
#     @latest resolves to that 2021 release), but tagged v0.121.0 (2025-12-07) is served.
#   - envoyproxy/ratelimit: the proxy lists no tagged version (upstream ships from main, and
#     @main is refused), so we pin the pseudo-version @latest resolves to (3fb702589d36, 2026-01-22).
# Override with GHZ_VERSION=... / RATELIMIT_VERSION=... (e.g. RATELIMIT_VERSION=latest);
# RATELIMIT_BUILD=source skips `go install` and builds from a copy of the module source.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
GHZ_VERSION="${GHZ_VERSION:-v0.121.0}"
RATELIMIT_VERSION="${RATELIMIT_VERSION:-v1.4.1-0.20260122083618-3fb702589d36}"

if [[ -n "${GO:-}" ]]; then :
elif command -v go >/dev/null 2>&1; then GO="$(command -v go)"
elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
else echo "install-peers: Go not found (set GO=/path/to/go)" >&2; exit 1
fi
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"   # never fetch another toolchain behind our back
export CGO_ENABLED="${CGO_ENABLED:-0}"

mkdir -p "$BIN"
log() { echo "install-peers: $*" >&2; }
PEERS=("$@")
[[ ${#PEERS[@]} -gt 0 ]] || PEERS=(ghz envoy-ratelimit)
wanted() { local p; for p in "${PEERS[@]}"; do [[ "$p" == "$1" ]] && return 0; done; return 1; }
for p in "${PEERS[@]}"; do
  [[ "$p" == ghz || "$p" == envoy-ratelimit ]] || { log "unknown peer '$p' (known: ghz, envoy-ratelimit)"; exit 1; }
done

stamp_ok() { # name version
  [[ -x "$BIN/$1" && -f "$BIN/$1.version" && "$(cat "$BIN/$1.version")" == "$2" ]]
}

# ---- ghz ------------------------------------------------------------------------------
if ! wanted ghz; then :
elif stamp_ok ghz "$GHZ_VERSION"; then
  log "ghz $GHZ_VERSION already installed"
else
  log "installing ghz $GHZ_VERSION (go install) ..."
  t0=$SECONDS
  GOBIN="$BIN" "$GO" install \
    -ldflags "-s -w -X main.version=${GHZ_VERSION#v}" \
    "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
  echo "$GHZ_VERSION" > "$BIN/ghz.version"
  log "ghz installed in $((SECONDS - t0)) s"
fi

# ---- envoyproxy/ratelimit -------------------------------------------------------------
if wanted envoy-ratelimit && [[ "$RATELIMIT_VERSION" == latest ]]; then
  RATELIMIT_VERSION="$(cd /tmp && "$GO" list -m -f '{{.Version}}' github.com/envoyproxy/ratelimit@latest)"
fi
if ! wanted envoy-ratelimit; then :
elif stamp_ok envoy-ratelimit "$RATELIMIT_VERSION"; then
  log "envoyproxy/ratelimit $RATELIMIT_VERSION already built"
else
  log "building envoyproxy/ratelimit $RATELIMIT_VERSION ..."
  t0=$SECONDS
  work="$(mktemp -d)"
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  # 1st choice: go install (works while upstream go.mod has no replace/exclude directives).
  if [[ "${RATELIMIT_BUILD:-install}" != source ]] && GOBIN="$work/bin" "$GO" install -ldflags "-s -w" \
       "github.com/envoyproxy/ratelimit/src/service_cmd@$RATELIMIT_VERSION"; then
    mv "$work/bin/service_cmd" "$BIN/envoy-ratelimit"
  else
    # Fallback: fetch the module source through the proxy and build it in a writable copy.
    log "building from a copy of the module source (go install skipped or failed)"
    dir="$(cd /tmp && "$GO" mod download -json "github.com/envoyproxy/ratelimit@$RATELIMIT_VERSION" \
           | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -n "$dir" && -d "$dir" ]] || { log "go mod download gave no source dir"; exit 1; }
    cp -r "$dir" "$work/src"
    chmod -R u+w "$work/src"
    (cd "$work/src" && "$GO" build -ldflags "-s -w" -o "$BIN/envoy-ratelimit" ./src/service_cmd)
  fi
  echo "$RATELIMIT_VERSION" > "$BIN/envoy-ratelimit.version"
  log "envoyproxy/ratelimit built in $((SECONDS - t0)) s"
fi

if wanted ghz; then echo "ghz                  $("$BIN/ghz" --version 2>&1 | head -n1)  ($BIN/ghz)"; fi
wanted envoy-ratelimit || exit 0
echo "envoyproxy/ratelimit $(cat "$BIN/envoy-ratelimit.version")  ($BIN/envoy-ratelimit, $("$GO" version "$BIN/envoy-ratelimit" | awk '{print $2}'))"
