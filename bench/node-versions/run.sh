#!/usr/bin/env bash
# Portcullis, and a grpc-js server that does nothing, on several Node.js versions side by side (what
# `npm run bench:node-versions` runs).
#
# Why: a fixed-rate p99 is made of V8's collections, and those changed more between Node releases than anything
# Portcullis changed (docs/tuning.md, "Node version"). Run this before moving a deployment to another Node.
#
# Each version in BENCH_NODE_VERSIONS, alternated over BENCH_RUNS rounds, runs each target in BENCH_TARGETS:
# `portcullis` (`bin/portcullis.js serve`, the Redis store or BENCH_STORE=memory) and `noop` (bench/ratelimit/
# noop-server.ts: grpc-js decodes and answers OK; what a release does to any grpc-js server). Each has the shipped node
# flags plus --trace-gc-nvp and runs on CPU 0 with redis-server; ghz on CPU 1 sends BENCH_RATE calls/s of
# ShouldRateLimit with 1 descriptor (500 distinct values, a limit never reached), 50 in flight on one connection;
# BENCH_WARMUP, then BENCH_DURATION measured. Reported per target and version, medians over the rounds: p50, p99,
# p99.9; the bytes scavenges promoted per call (what only a mark-compact frees again); scavenges and their median
# pause; mark-compacts; the longest pause in the measured window.
#
# Node binaries: the official Linux builds as the npm registry's `node-linux-<arch>` packages carry them, unpacked into
# .tools/node/<version>/ on first use. ghz: bench/ratelimit/install-peers.sh (Go module proxy).
# Knobs: BENCH_NODE_VERSIONS ("22.23.5 24.14.1 24.15.0 24.22.3 26.12.1") BENCH_TARGETS ("portcullis noop")
#        BENCH_RUNS (3) BENCH_RATE (5000) BENCH_DURATION (10s) BENCH_WARMUP (3s) BENCH_STORE (redis | memory)
#        BENCH_SKIP_BUILD (1: dist/ as it is) BENCH_NODE_FLAGS (more Node flags for every target, after the shipped ones)
# Output: Markdown on stdout and in bench/node-versions/results/<time>.md. Exits non-zero when a version cannot be
# installed, a target does not come up, or any call fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VERSIONS="${BENCH_NODE_VERSIONS:-22.23.5 24.14.1 24.15.0 24.22.3 26.12.1}"
RUNS="${BENCH_RUNS:-3}"
RATE="${BENCH_RATE:-5000}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
STORE="${BENCH_STORE:-redis}"
TARGETS="${BENCH_TARGETS:-portcullis noop}"

log() { echo "bench: $*" >&2; }
die() { echo "bench: ERROR: $*" >&2; exit 1; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ "$RATE" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATE must be a positive integer"
[[ "$DURATION" =~ ^[1-9][0-9]*s$ && "$WARMUP" =~ ^[1-9][0-9]*s$ ]] || die "BENCH_DURATION and BENCH_WARMUP are whole seconds, e.g. 10s"
case "$STORE" in redis|memory) ;; *) die "BENCH_STORE: redis | memory" ;; esac
for t in $TARGETS; do case "$t" in portcullis|noop) ;; *) die "BENCH_TARGETS: portcullis and/or noop, got '$t'" ;; esac; done
[[ "$(nproc)" -ge 2 ]] || die "needs 2 CPUs: Portcullis and Redis on one, the load generator on the other"
for tool in jq redis-server redis-cli taskset node npm tar; do command -v "$tool" >/dev/null 2>&1 || die "$tool not found"; done
case "$(uname -m)" in x86_64) ARCH=x64 ;; aarch64) ARCH=arm64 ;; *) die "no node-linux package for $(uname -m)" ;; esac

# ---- Node binaries, ghz, build ----------------------------------------------------------------
node_bin() { echo "$ROOT/.tools/node/$1/bin/node"; }
for v in $VERSIONS; do
  [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "BENCH_NODE_VERSIONS: '$v' is not a version like 24.14.1"
  [[ -x "$(node_bin "$v")" ]] && continue
  log "installing Node $v (npm package node-linux-$ARCH@$v) ..."
  dir="$ROOT/.tools/node/$v"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  tarball="$(cd "$dir.tmp" && npm pack --silent "node-linux-$ARCH@$v")" || die "npm pack node-linux-$ARCH@$v failed"
  tar -xzf "$dir.tmp/$tarball" -C "$dir.tmp" && mv "$dir.tmp/package" "$dir" && rm -rf "$dir.tmp"
  [[ "$("$(node_bin "$v")" -v)" == "v$v" ]] || die "the node-linux-$ARCH@$v package is not Node $v"
done
bash "$ROOT/bench/ratelimit/install-peers.sh" ghz >&2
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then npm run --silent build >&2 || die "npm run build failed"; fi
GC_SUMMARY="$ROOT/dist/bench/node-versions/gc-summary.js"
PROBE="$ROOT/dist/bench/ratelimit/probe.js"
NOOP="$ROOT/dist/bench/ratelimit/noop-server.js"
[[ -f "$GC_SUMMARY" && -f "$PROBE" && -f "$NOOP" ]] || die "dist/ lacks the bench helpers (npm run build)"
DEPS="$ROOT/node_modules/@grpc/grpc-js-xds/deps"

# ---- temp dir and teardown --------------------------------------------------------------------
TMP="$(mktemp -d /tmp/portcullis-node-versions.XXXXXX)"
SERVER="" REDIS=""
cleanup() {
  local rc=$?
  for pid in $SERVER $REDIS; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [[ $rc == 0 ]] || { [[ -f "$TMP/server.log" ]] && grep -v 'gc=\|GC: {' "$TMP/server.log" | tail -n 15 >&2; }
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r GRPC_PORT ADMIN_PORT REDIS_PORT <<< "$(node -e '
  const net = require("net"); const servers = [0, 1, 2].map(() => net.createServer().listen(0, "127.0.0.1"));
  setTimeout(() => { console.log(servers.map((s) => s.address().port).join(" ")); servers.forEach((s) => s.close()); }, 100);')"
mkdir -p "$TMP/descriptors"
printf 'domain: bench\ndescriptors:\n  - key: k1\n    rate_limit: { unit: second, requests_per_unit: 1000000000 }\n' > "$TMP/descriptors/bench.yaml"
{
  printf 'server:\n  grpc: { address: "127.0.0.1:%s" }\n  admin: { address: "127.0.0.1:%s" }\n' "$GRPC_PORT" "$ADMIN_PORT"
  [[ "$STORE" == redis ]] && printf 'redis: { url: "redis://127.0.0.1:%s" }\n' "$REDIS_PORT"
  printf 'ratelimit: { descriptors: "%s" }\nlog: { level: warn }\n' "$TMP/descriptors"
} > "$TMP/portcullis.yaml"
jq -nc '[range(500) | {domain: "bench", descriptors: [{entries: [{key: "k1", value: "v\(.)"}]}]}]' > "$TMP/data.json"
if [[ "$STORE" == redis ]]; then
  taskset -c 0 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --dir "$TMP" \
    --loglevel warning > "$TMP/redis.log" 2>&1 &
  REDIS=$!
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
read -r -a SHIPPED_FLAGS <<< "$(node --input-type=module -e "import { PORTCULLIS_NODE_FLAGS } from '$ROOT/dist/src/server/node-flags.js'; console.log(PORTCULLIS_NODE_FLAGS.join(' '))")"
read -r -a EXTRA_FLAGS <<< "${BENCH_NODE_FLAGS:-}"
SHIPPED_FLAGS+=("${EXTRA_FLAGS[@]}")

ghz() { # duration, then more ghz flags
  local duration="$1"; shift
  taskset -c 1 "$ROOT/.tools/bin/ghz" --insecure --proto "$DEPS/envoy-api/envoy/service/ratelimit/v3/rls.proto" \
    --import-paths "$DEPS/envoy-api,$DEPS/xds,$DEPS/googleapis,$DEPS/protoc-gen-validate" \
    --call envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit --disable-template-functions --disable-template-data \
    --concurrency 50 --connections 1 --cpus 1 --rps "$RATE" --data-file "$TMP/data.json" --duration "$duration" \
    --duration-stop ignore "$@" "127.0.0.1:$GRPC_PORT"
}

# One round of one target on one version: start it, warm up, measure, stop. Appends a JSON line to $TMP/runs.jsonl.
measure() { # target version round
  local t="$1" v="$2" node
  node="$(node_bin "$v")"
  if [[ "$t" == portcullis ]]; then
    taskset -c 0 "$node" "${SHIPPED_FLAGS[@]}" --trace-gc-nvp "$ROOT/bin/portcullis.js" serve --config "$TMP/portcullis.yaml" \
      > "$TMP/server.log" 2>&1 &
  else
    taskset -c 0 "$node" "${SHIPPED_FLAGS[@]}" --trace-gc-nvp "$NOOP" "$GRPC_PORT" > "$TMP/server.log" 2>&1 &
  fi
  SERVER=$!
  node "$PROBE" "127.0.0.1:$GRPC_PORT" bench k1=ready 1 20000 >/dev/null || die "$t on Node $v did not come up"
  ghz "$WARMUP" --format summary > /dev/null
  local first_line
  first_line="$(wc -l < "$TMP/server.log")"
  ghz "$DURATION" --format json --output "$TMP/run.json"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  local calls errors
  calls="$(jq '[.details[] | select(.status == "OK")] | length' "$TMP/run.json")"
  errors="$(jq '[.details[] | select(.status != "OK")] | length' "$TMP/run.json")"
  [[ "$calls" -gt 0 && "$errors" == 0 ]] || die "$t on Node $v: $calls calls answered, $errors failed: $(jq -c '.statusCodeDistribution' "$TMP/run.json")"
  jq -c --arg target "$t" --arg version "$v" --argjson round "$3" --argjson gc "$(node "$GC_SUMMARY" "$TMP/server.log" "$first_line" "$calls")" '
    ([.details[] | .latency] | sort) as $l | def q(p): $l[((($l | length) * p) | ceil) - 1] / 1e6;
    {target: $target, version: $version, round: $round, rps: .rps, p50_ms: q(0.5), p99_ms: q(0.99), p999_ms: q(0.999)} + $gc' \
    "$TMP/run.json" | tee -a "$TMP/runs.jsonl" | jq -r '"  \(.target) on Node \(.version): p99 \(.p99_ms * 100 | round / 100) ms, p99.9 \(.p999_ms * 100 | round / 100) ms, promoted \(.promotedBytesPerCall | round) B/call, \(.markCompacts) mark-compacts"' >&2
}

for round in $(seq 1 "$RUNS"); do
  log "round $round of $RUNS"
  for v in $VERSIONS; do for t in $TARGETS; do measure "$t" "$v" "$round"; done; done
done

mkdir -p "$ROOT/bench/node-versions/results"
REPORT="$ROOT/bench/node-versions/results/$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "# Portcullis and a grpc-js no-op on several Node versions: \`npm run bench:node-versions\`"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2)."
  echo "Targets $TARGETS, each with \`${SHIPPED_FLAGS[*]} --trace-gc-nvp\`, Portcullis with the $STORE store, on CPU 0 (with redis-server); ghz on CPU 1 at $RATE calls/s,"
  echo "1 descriptor, 50 calls in flight on one connection; $WARMUP warm-up, $DURATION measured; $RUNS rounds, versions alternated."
  echo "Medians over the rounds (the p99's range in brackets). \"Promoted\": bytes scavenges moved to the old generation, per call."
  echo
  echo "| target | Node | p50 ms | p99 ms | p99.9 ms | promoted B/call | scavenges | median scavenge ms | mark-compacts | longest pause ms |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r -s --arg versions "$VERSIONS" --arg targets "$TARGETS" '
    def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def r(d): (. * pow(10; d) | round) / pow(10; d) | tostring;
    def words: split(" ") | map(select(. != ""));
    group_by([.target, .version]) | map({key: "\(.[0].target) \(.[0].version)", value: .}) | from_entries as $by
    | ($targets | words[]) as $t | ($versions | words[]) as $v | $by["\($t) \($v)"] as $runs
    | "| \($t) | \($v) | \($runs | map(.p50_ms) | median | r(2)) | \($runs | map(.p99_ms) | median | r(2)) (\($runs | map(.p99_ms) | min | r(2))–\($runs | map(.p99_ms) | max | r(2))) | \($runs | map(.p999_ms) | median | r(2)) | \($runs | map(.promotedBytesPerCall) | median | r(0)) | \($runs | map(.scavenges) | median | r(0)) | \($runs | map(.scavengeMedianPauseMs) | median | r(1)) | \($runs | map(.markCompacts) | median | r(0)) | \($runs | map(.maxPauseMs) | median | r(1)) |"' \
    "$TMP/runs.jsonl"
} | tee "$REPORT"
log "report: $REPORT"
