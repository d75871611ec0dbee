#!/usr/bin/env bash
# ext_authz benchmark (what `npm run bench:authz` runs): ghz against Portcullis' Authorization/Check beside a no-op
# Check server (grpc-js decode + OK) in the same run, alternated (noop, portcullis, noop, portcullis, ...).
# Scenarios: API key; JWT RS256 cached; JWT RS256 / ES256 / EdDSA uncached (a second Portcullis with the verified-token
# cache off); introspection cached (a local RFC 7662 endpoint, every answer cached after the first).
# Knobs: BENCH_DURATION (5s) BENCH_WARMUP (1s) BENCH_RUNS (2) BENCH_CONCURRENCY (50)
# Output: a Markdown table on stdout (medians over runs; ratio = portcullis / noop checks per second).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DURATION="${BENCH_DURATION:-5s}"; WARMUP="${BENCH_WARMUP:-1s}"; RUNS="${BENCH_RUNS:-2}"; CONCURRENCY="${BENCH_CONCURRENCY:-50}"
GHZ="$ROOT/.tools/bin/ghz"
[[ -x "$GHZ" ]] || { echo "bench: $GHZ missing (bench/ratelimit/install-peers.sh installs it)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench: jq missing" >&2; exit 1; }
[[ "${BENCH_SKIP_BUILD:-0}" == 1 ]] || npm run --silent build
TMP="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
NOOP_PORT=19300 CACHED_PORT=19301 UNCACHED_PORT=19302 INTRO_PORT=19303
node dist/bench/authz/servers.js noop "$NOOP_PORT" > "$TMP/noop.log" & PIDS+=($!)
node dist/bench/authz/servers.js introspection "$INTRO_PORT" > "$TMP/intro.log" & PIDS+=($!)
CACHED_PORT=$CACHED_PORT UNCACHED_PORT=$UNCACHED_PORT node dist/bench/authz/prepare.js "$TMP" "http://127.0.0.1:$INTRO_PORT/introspect"
node bin/portcullis.js serve --config "$TMP/cached.yaml" > "$TMP/cached.log" 2>&1 & PIDS+=($!)
node bin/portcullis.js serve --config "$TMP/uncached.yaml" > "$TMP/uncached.log" 2>&1 & PIDS+=($!)
sleep 3
GHZ_ARGS=(--insecure --protoset dist/proto/envoy.binpb --call envoy.service.auth.v3.Authorization/Check
  --disable-template-functions --disable-template-data --concurrency "$CONCURRENCY" --connections 1 --duration-stop ignore)
# scenario data-file portcullis-port
SCENARIOS=("apikey apikey $CACHED_PORT" "jwt-rs256-cached jwt-RS256 $CACHED_PORT" "jwt-rs256-uncached jwt-RS256 $UNCACHED_PORT"
  "jwt-es256-uncached jwt-ES256 $UNCACHED_PORT" "jwt-eddsa-uncached jwt-EdDSA $UNCACHED_PORT" "introspection-cached introspection $CACHED_PORT")
echo "| scenario | noop checks/s | portcullis checks/s | ratio | noop p50 / p99 ms | portcullis p50 / p99 ms |"
echo "|---|---|---|---|---|---|"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for entry in "${SCENARIOS[@]}"; do
  read -r name data port <<< "$entry"
  for r in $(seq 1 "$RUNS"); do
    for target in noop portcullis; do
      addr="127.0.0.1:$([[ $target == noop ]] && echo $NOOP_PORT || echo "$port")"
      "$GHZ" "${GHZ_ARGS[@]}" --data-file "$TMP/$data.json" --duration "$WARMUP" --format json --output /dev/null "$addr" 2>/dev/null
      "$GHZ" "${GHZ_ARGS[@]}" --data-file "$TMP/$data.json" --duration "$DURATION" --format json --output "$TMP/$name-$target-$r.json" "$addr" 2>"$TMP/ghz.err" || { cat "$TMP/ghz.err" >&2; exit 1; }
      ok="$(jq '.statusCodeDistribution.OK // 0' "$TMP/$name-$target-$r.json")"; count="$(jq '.count' "$TMP/$name-$target-$r.json")"
      [[ "$ok" == "$count" ]] || { echo "bench: $name/$target answered errors: $(jq -c '.statusCodeDistribution' "$TMP/$name-$target-$r.json")" >&2; exit 1; }
    done
  done
  stat() { for r in $(seq 1 "$RUNS"); do jq "$2" "$TMP/$name-$1-$r.json"; done | median; }
  nr="$(stat noop '.rps')"; pr="$(stat portcullis '.rps')"
  np50="$(stat noop '[.latencyDistribution[] | select(.percentage==50) | .latency][0] / 1e6')"; np99="$(stat noop '[.latencyDistribution[] | select(.percentage==99) | .latency][0] / 1e6')"
  pp50="$(stat portcullis '[.latencyDistribution[] | select(.percentage==50) | .latency][0] / 1e6')"; pp99="$(stat portcullis '[.latencyDistribution[] | select(.percentage==99) | .latency][0] / 1e6')"
  printf "| %s | %.0f | %.0f | %.2f | %.2f / %.2f | %.2f / %.2f |\n" "$name" "$nr" "$pr" "$(echo "$pr / $nr" | bc -l)" "$np50" "$np99" "$pp50" "$pp99"
done
echo
echo "raw RS256 crypto.verify: $(cat "$TMP/verify-us.txt") µs per call (Node $(node --version), $(nproc) CPUs, shared machine)"
