#!/usr/bin/env bash
# Side-by-side benchmark of envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
# (what `npm run bench:ratelimit` runs).
#
# Targets (BENCH_TARGETS, comma-separated, default: all four, run alternated A B C D A B C D ...):
#   noop               dist/bench/ratelimit/noop-server.js: grpc-js decode + OK, the transport ceiling
#   envoy-ratelimit    envoyproxy/ratelimit (Go), Redis backend   (built by install-peers.sh)
#   portcullis-memory  node bin/portcullis.js serve, memory store
#   portcullis-redis   node bin/portcullis.js serve, Redis store
#   portcullis-redis-base  portcullis-redis from another checkout, BENCH_BASE_DIR (built there), for before/after
#   portcullis-redis-2w  the same with server.workers: 2 (a supervisor and two worker processes on one port;
#                      its CPU is the sum over them). Not in the default list: run it unpinned with
#                      BENCH_PIN=0 BENCH_CONNECTIONS=2, the supervisor hands out connections, not calls.
# Scenarios: 1 and 3 descriptors per request (BENCH_SCENARIOS, default "1,3").
# One redis-server (persistence off) on a free port serves both Redis targets.
# Load: ghz in its own process, same flags for every target; a warm-up run, then a measured run.
#
# Fixed rate (BENCH_FIXED=1, the default when envoy-ratelimit is a target): after the saturation runs, every
# target is driven again at a fixed rate (ghz --rps) of BENCH_FIXED_RPS, default half of envoy-ratelimit's median
# saturation RPS of that scenario, and p50/p99/p99.9 are reported from every request's latency, beside service and
# Redis CPU per request and Redis read events per request (INFO stats total_reads_processed: how often Redis woke).
# Knobs: BENCH_DURATION (10s) BENCH_WARMUP (2s) BENCH_RUNS (3) BENCH_CONCURRENCY (50)
#        BENCH_CONNECTIONS (1) BENCH_KEYS (500 distinct descriptor values per key)
#        BENCH_TARGETS BENCH_SCENARIOS
#        BENCH_PIN (1 = pin servers+redis to BENCH_SERVER_CPUS, ghz to BENCH_CLIENT_CPUS; 0 = no pinning)
#        BENCH_SERVER_CPUS (0) BENCH_CLIENT_CPUS (1)
#        BENCH_RATELIMIT_STATS (null | prometheus | logging; default null, see below)
#        BENCH_SHIPPED_NODE_FLAGS (the flags Portcullis ships with, src/server/node-flags.ts: --single-threaded-gc --no-maglev;
#                   given to every Node server here, the no-op too, so it stays the ceiling of the same runtime;
#                   set it empty for a run without them; the no-op also gets the V8 flags Portcullis sets on
#                   itself on this Node release, src/server/node-version.ts)
#        BENCH_NODE_OPTIONS (extra node flags for the Portcullis targets, e.g. --max-semi-space-size=32)
#        BENCH_BASE_NODE_OPTIONS (for portcullis-redis-base only; default BENCH_NODE_OPTIONS)
#        BENCH_SKIP_BUILD (1 = use dist/ as is) BENCH_KEEP_TMP (1 = keep logs and configs)
#        BENCH_TLS (0 = plaintext, the default | 1 = every target serves TLS | mtls = TLS with client certificates
#                   required and checked). Certificates from scripts/make-certs.sh in the temp dir (EC P-256).
#                   Portcullis: server.grpc.tls (mtls: client_ca_file and client_sans); envoy-ratelimit:
#                   GRPC_SERVER_USE_TLS / _TLS_CERT / _TLS_KEY (mtls: GRPC_CLIENT_TLS_CACERT; not GRPC_CLIENT_TLS_SAN,
#                   which checks a DNS name and the demo client certificate has a URI SAN); noop: grpc-js
#                   ServerCredentials.createSsl; ghz: --cacert (mtls: --cert, --key). Compare a BENCH_TLS=1 report
#                   with a plaintext one of the same targets for what TLS costs.
# Output: Markdown on stdout and in bench/ratelimit/results/<timestamp>.md (+ .jsonl raw runs).
# Exits non-zero if any target fails to build, start, pass its sanity check, or answers any
# request in error. Everything listens on 127.0.0.1 only and is torn down on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE="$ROOT/bench/ratelimit"
BIN="$ROOT/.tools/bin"

DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
RUNS="${BENCH_RUNS:-3}"
CONCURRENCY="${BENCH_CONCURRENCY:-50}"
CONNECTIONS="${BENCH_CONNECTIONS:-1}"
KEYS="${BENCH_KEYS:-500}"
TARGETS="${BENCH_TARGETS:-noop,envoy-ratelimit,portcullis-memory,portcullis-redis}"
SCENARIOS="${BENCH_SCENARIOS:-1,3}"
RL_STATS="${BENCH_RATELIMIT_STATS:-null}"
NPROC="$(nproc)"
if [[ "$NPROC" -ge 2 ]]; then PIN="${BENCH_PIN:-1}"; else PIN="${BENCH_PIN:-0}"; fi
SERVER_CPUS="${BENCH_SERVER_CPUS:-0}"
CLIENT_CPUS="${BENCH_CLIENT_CPUS:-1}"

log() { echo "bench: $*" >&2; }
die() { echo "bench: ERROR: $*" >&2; exit 1; }

# ---- validate the knobs -------------------------------------------------------------------------
IFS=',' read -r -a TARGET_LIST <<< "$TARGETS"
IFS=',' read -r -a SCENARIO_LIST <<< "$SCENARIOS"
[[ ${#TARGET_LIST[@]} -gt 0 ]] || die "BENCH_TARGETS is empty"
NEED_REDIS=0 NEED_PORTCULLIS=0
for t in "${TARGET_LIST[@]}"; do
  case "$t" in
    noop) ;;
    envoy-ratelimit) NEED_REDIS=1 ;;
    portcullis-memory) NEED_PORTCULLIS=1 ;;
    portcullis-redis|portcullis-redis-2w) NEED_PORTCULLIS=1 NEED_REDIS=1 ;;
    portcullis-redis-base) NEED_PORTCULLIS=1 NEED_REDIS=1
      [[ -f "${BENCH_BASE_DIR:-}/bin/portcullis.js" ]] || die "portcullis-redis-base needs BENCH_BASE_DIR, a built checkout" ;;
    *) die "unknown target '$t' (known: noop, envoy-ratelimit, portcullis-memory, portcullis-redis, portcullis-redis-2w, portcullis-redis-base)" ;;
  esac
done
for s in "${SCENARIO_LIST[@]}"; do
  [[ "$s" == 1 || "$s" == 3 ]] || die "unknown scenario '$s' (known: 1, 3)"
done
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer"
[[ "$CONCURRENCY" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONCURRENCY must be a positive integer"
[[ "$CONNECTIONS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS must be a positive integer"
[[ "$KEYS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_KEYS must be a positive integer"
case "$RL_STATS" in null|prometheus|logging) ;; *) die "BENCH_RATELIMIT_STATS: null|prometheus|logging" ;; esac
TLS="${BENCH_TLS:-0}"
case "$TLS" in 0|1|mtls) ;; *) die "BENCH_TLS: 0 | 1 | mtls" ;; esac
for tool in jq redis-server redis-cli taskset node; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (jq: apt-get install -y jq)"
done

# Number of CPUs in a taskset list such as "1", "0,2", "2-3".
count_cpus() {
  local n=0 part a b
  IFS=',' read -r -a parts <<< "$1"
  for part in "${parts[@]}"; do
    if [[ "$part" == *-* ]]; then a="${part%-*}"; b="${part#*-}"; n=$((n + b - a + 1)); else n=$((n + 1)); fi
  done
  echo "$n"
}
if [[ "$PIN" == 1 ]]; then
  SERVER_PIN=(taskset -c "$SERVER_CPUS")
  CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
  GHZ_CPUS="$(count_cpus "$CLIENT_CPUS")"
  PIN_TEXT="pinned with taskset: each service under test and redis-server on CPU $SERVER_CPUS, ghz on CPU $CLIENT_CPUS (ghz --cpus=$GHZ_CPUS; Go's GOMAXPROCS and Node follow the affinity mask)"
else
  SERVER_PIN=()
  CLIENT_PIN=()
  GHZ_CPUS="$NPROC"
  PIN_TEXT="not pinned (BENCH_PIN=0): services, redis-server and ghz share all $NPROC CPUs"
fi

# ---- peers and build --------------------------------------------------------------------------
bash "$HERE/install-peers.sh" >&2
GHZ="$BIN/ghz"
RATELIMIT_BIN="$BIN/envoy-ratelimit"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  if [[ "$NEED_PORTCULLIS" == 1 ]]; then
    log "building the project (npm run build) ..."
    npm run --silent build >&2 || die "npm run build failed (Portcullis targets need dist/; set BENCH_TARGETS=noop,envoy-ratelimit to skip them)"
  else
    log "building the benchmark helpers only (bench/ratelimit/tsconfig.json) ..."
    "$ROOT/node_modules/.bin/tsc" -p "$HERE/tsconfig.json" >&2 || die "tsc failed for bench/ratelimit"
  fi
fi
NOOP_JS="$ROOT/dist/bench/ratelimit/noop-server.js"
PROBE_JS="$ROOT/dist/bench/ratelimit/probe.js"
[[ -f "$NOOP_JS" && -f "$PROBE_JS" ]] || die "missing $NOOP_JS or $PROBE_JS (build first)"
if [[ "$NEED_PORTCULLIS" == 1 ]]; then
  [[ -f "$ROOT/bin/portcullis.js" ]] || die "bin/portcullis.js missing (set BENCH_TARGETS to exclude portcullis-*)"
  [[ -f "$ROOT/dist/src/cli/main.js" ]] || die "dist/src/cli/main.js missing (npm run build)"
fi

DEPS="$ROOT/node_modules/@grpc/grpc-js-xds/deps"
PROTO="$DEPS/envoy-api/envoy/service/ratelimit/v3/rls.proto"
[[ -f "$PROTO" ]] || die "missing $PROTO (npm ci)"
IMPORTS="$DEPS/envoy-api,$DEPS/xds,$DEPS/googleapis,$DEPS/protoc-gen-validate"

# ---- temp dir, processes, teardown ------------------------------------------------------------
TMP="$(mktemp -d /tmp/portcullis-bench.XXXXXX)"
declare -A PID=()        # name -> pid of everything we started
declare -A PORT=()       # target -> gRPC port
CHILD=""                 # the ghz run in progress (run in the background so a signal is handled at once)
exec 3>&2                # the script's stderr, for cleanup (a trap can fire inside a redirected command)
cleanup() {
  local rc=$? name pid
  trap - EXIT INT TERM
  exec 2>&3
  if [[ -n "$CHILD" ]]; then
    pkill -TERM -P "$CHILD" 2>/dev/null || true   # ghz under /usr/bin/time and taskset
    kill -TERM "$CHILD" 2>/dev/null || true
    wait "$CHILD" 2>/dev/null || true
  fi
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
  for _ in $(seq 1 30); do
    local alive=0
    for name in "${!PID[@]}"; do kill -0 "${PID[$name]}" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for name in "${!PID[@]}"; do
    pid="${PID[$name]}"
    if kill -0 "$pid" 2>/dev/null; then log "killing $name ($pid)"; kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  if [[ $rc != 0 ]]; then
    for f in "$TMP"/*.log; do
      [[ -f "$f" ]] || continue
      echo "---- last lines of $(basename "$f") ----" >&2
      tail -n 15 "$f" | cut -c1-400 >&2
    done
  fi
  if [[ "${BENCH_KEEP_TMP:-0}" == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Free loopback ports, all held at once so they are distinct.
free_ports() {
  node -e '
    const net = require("net"); const n = Number(process.argv[1]); const held = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => {
        held.push(s);
        if (held.length === n) { console.log(held.map((x) => x.address().port).join(" ")); held.forEach((x) => x.close()); }
      });
    }' "$1"
}
read -r -a PORTS <<< "$(free_ports 14)"
REDIS_PORT="${PORTS[0]}"
PORT[noop]="${PORTS[1]}"
PORT[envoy-ratelimit]="${PORTS[2]}"; RL_HTTP_PORT="${PORTS[3]}"; RL_DEBUG_PORT="${PORTS[4]}"; RL_PROM_PORT="${PORTS[5]}"
PORT[portcullis-memory]="${PORTS[6]}"; PCM_ADMIN_PORT="${PORTS[7]}"
PORT[portcullis-redis]="${PORTS[8]}"; PCR_ADMIN_PORT="${PORTS[9]}"
PORT[portcullis-redis-2w]="${PORTS[10]}"; PCR2_ADMIN_PORT="${PORTS[11]}"
PORT[portcullis-redis-base]="${PORTS[12]}"; PCRB_ADMIN_PORT="${PORTS[13]}"

# ---- TLS (BENCH_TLS) ----------------------------------------------------------------------------
CERTS="$TMP/certs"
TLS_TEXT="plaintext (h2c)"
if [[ "$TLS" != 0 ]]; then
  bash "$ROOT/scripts/make-certs.sh" "$CERTS" || die "scripts/make-certs.sh failed (openssl missing?)"
  # The probe and the no-op server read these (bench/ratelimit/probe.ts, noop-server.ts).
  export BENCH_TLS_CA="$CERTS/ca.pem" BENCH_TLS_SERVER_CERT="$CERTS/server.pem" BENCH_TLS_SERVER_KEY="$CERTS/server-key.pem"
  TLS_TEXT="TLS (server certificate: EC P-256 from scripts/make-certs.sh; ghz checks it against its CA)"
  if [[ "$TLS" == mtls ]]; then
    export BENCH_TLS_CLIENT_CERT="$CERTS/client.pem" BENCH_TLS_CLIENT_KEY="$CERTS/client-key.pem"
    TLS_TEXT="mTLS (TLS, and client certificates required and checked against the CA; Portcullis also checks client_sans, envoy-ratelimit no SAN)"
  fi
fi

# ---- configuration ----------------------------------------------------------------------------
# envoyproxy/ratelimit reads $RUNTIME_ROOT/$RUNTIME_SUBDIRECTORY/config/*.yaml; Portcullis reads
# the same directory (ratelimit.descriptors).
DESC_DIR="$TMP/runtime/ratelimit/config"
mkdir -p "$DESC_DIR"
LIMIT=1000000000   # per second, per value: never reached, every answer must be OK
cat > "$DESC_DIR/bench.yaml" <<EOF
domain: bench
descriptors:
  - key: k1
    rate_limit: { unit: second, requests_per_unit: $LIMIT }
  - key: k2
    rate_limit: { unit: second, requests_per_unit: $LIMIT }
  - key: k3
    rate_limit: { unit: second, requests_per_unit: $LIMIT }
EOF
# A low limit, used only by the sanity check (proves the services enforce limits).
cat > "$DESC_DIR/bench-sanity.yaml" <<'EOF'
domain: bench_sanity
descriptors:
  - key: k1
    rate_limit: { unit: minute, requests_per_unit: 3 }
EOF

# Request bodies: a JSON array of KEYS messages; ghz sends message (request number % KEYS), parsed
# once and cached (no per-request templating, which costs ghz more CPU than the no-op server).
node -e '
  const [n, out1, out3] = [Number(process.argv[1]), process.argv[2], process.argv[3]];
  const d = (k, v) => ({ entries: [{ key: k, value: "v" + v }] });
  const one = [], three = [];
  for (let i = 0; i < n; i++) {
    one.push({ domain: "bench", descriptors: [d("k1", i)] });
    three.push({ domain: "bench", descriptors: [d("k1", i), d("k2", (i * 7 + 3) % n), d("k3", (i * 13 + 5) % n)] });
  }
  require("fs").writeFileSync(out1, JSON.stringify(one));
  require("fs").writeFileSync(out3, JSON.stringify(three));
' "$KEYS" "$TMP/data-1.json" "$TMP/data-3.json"

write_portcullis_config() { # file grpc-port admin-port with-redis [workers]
  {
    echo "server:"
    case "$TLS" in
      0) echo "  grpc: { address: \"127.0.0.1:$2\" }" ;;
      1) echo "  grpc: { address: \"127.0.0.1:$2\", tls: { cert_file: \"$CERTS/server.pem\", key_file: \"$CERTS/server-key.pem\" } }" ;;
      mtls) echo "  grpc: { address: \"127.0.0.1:$2\", tls: { cert_file: \"$CERTS/server.pem\", key_file: \"$CERTS/server-key.pem\", client_ca_file: \"$CERTS/ca.pem\", client_sans: [\"spiffe://portcullis.local/demo-client\"] } }" ;;
    esac
    echo "  admin: { address: \"127.0.0.1:$3\" }"
    echo "  workers: ${5:-1}"
    if [[ "$4" == 1 ]]; then
      echo "redis:"
      echo "  url: \"redis://127.0.0.1:$REDIS_PORT\""
    fi
    echo "ratelimit:"
    echo "  descriptors: \"$DESC_DIR\""
  } > "$1"
}

read -r -a SHIPPED_FLAGS <<< "${BENCH_SHIPPED_NODE_FLAGS---single-threaded-gc --no-maglev}"
# The V8 flags Portcullis sets on itself on this Node release (src/server/node-version.ts), given to the no-op too:
# without them a grpc-js server on Node 24.15+ or 26 keeps its calls until a mark-compact and is no longer the ceiling.
read -r -a RELEASE_FLAGS <<< "$(node --input-type=module -e "import { v8FlagsFor } from '$ROOT/dist/src/server/node-version.js'; console.log(v8FlagsFor(process.version).join(' '))")"
read -r -a NODE_FLAGS <<< "${SHIPPED_FLAGS[*]} ${BENCH_NODE_OPTIONS:-}"
read -r -a BASE_NODE_FLAGS <<< "${SHIPPED_FLAGS[*]} ${BENCH_BASE_NODE_OPTIONS-${BENCH_NODE_OPTIONS:-}}"
# ---- start everything -------------------------------------------------------------------------
start() { # name logfile cmd...
  local name="$1" logf="$2"; shift 2
  "$@" > "$logf" 2>&1 < /dev/null &
  PID[$name]=$!
}

if [[ "$NEED_REDIS" == 1 ]]; then
  start redis "$TMP/redis.log" "${SERVER_PIN[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save '' --appendonly no --protected-mode yes --daemonize no --dir "$TMP" --loglevel warning
  for _ in $(seq 1 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || die "redis-server did not start"
fi

for t in "${TARGET_LIST[@]}"; do
  case "$t" in
    noop)
      start noop "$TMP/noop.log" "${SERVER_PIN[@]}" node "${SHIPPED_FLAGS[@]}" "${RELEASE_FLAGS[@]}" "$NOOP_JS" "${PORT[noop]}" ;;
    envoy-ratelimit)
      rl_env=(USE_STATSD=false LOG_LEVEL=warn REDIS_SOCKET_TYPE=tcp REDIS_URL="127.0.0.1:$REDIS_PORT"
        RUNTIME_ROOT="$TMP/runtime" RUNTIME_SUBDIRECTORY=ratelimit RUNTIME_WATCH_ROOT=false
        GRPC_HOST=127.0.0.1 GRPC_PORT="${PORT[envoy-ratelimit]}" HOST=127.0.0.1 PORT="$RL_HTTP_PORT"
        DEBUG_HOST=127.0.0.1 DEBUG_PORT="$RL_DEBUG_PORT")
      if [[ "$TLS" != 0 ]]; then
        rl_env+=(GRPC_SERVER_USE_TLS=true GRPC_SERVER_TLS_CERT="$CERTS/server.pem" GRPC_SERVER_TLS_KEY="$CERTS/server-key.pem")
        [[ "$TLS" == mtls ]] && rl_env+=(GRPC_CLIENT_TLS_CACERT="$CERTS/ca.pem")
      fi
      case "$RL_STATS" in
        # With USE_STATSD=false and no other sink it falls back to gostats' logging sink, which
        # writes one debug JSON line per request to stdout: a cost production never pays. The
        # null sink keeps the in-process stats work and drops the flush.
        null) rl_env+=(DISABLE_STATS=true) ;;
        prometheus) rl_env+=(USE_PROMETHEUS=true PROMETHEUS_ADDR="127.0.0.1:$RL_PROM_PORT") ;;
        logging) ;;
      esac
      start envoy-ratelimit "$TMP/envoy-ratelimit.log" env "${rl_env[@]}" "${SERVER_PIN[@]}" "$RATELIMIT_BIN" ;;
    portcullis-memory)
      write_portcullis_config "$TMP/portcullis-memory.yaml" "${PORT[$t]}" "$PCM_ADMIN_PORT" 0
      start "$t" "$TMP/$t.log" "${SERVER_PIN[@]}" node "${NODE_FLAGS[@]}" "$ROOT/bin/portcullis.js" serve --config "$TMP/portcullis-memory.yaml" ;;
    portcullis-redis)
      write_portcullis_config "$TMP/portcullis-redis.yaml" "${PORT[$t]}" "$PCR_ADMIN_PORT" 1
      start "$t" "$TMP/$t.log" "${SERVER_PIN[@]}" node "${NODE_FLAGS[@]}" "$ROOT/bin/portcullis.js" serve --config "$TMP/portcullis-redis.yaml" ;;
    portcullis-redis-2w)
      write_portcullis_config "$TMP/portcullis-redis-2w.yaml" "${PORT[$t]}" "$PCR2_ADMIN_PORT" 1 2
      start "$t" "$TMP/$t.log" "${SERVER_PIN[@]}" node "${NODE_FLAGS[@]}" "$ROOT/bin/portcullis.js" serve --config "$TMP/portcullis-redis-2w.yaml" ;;
    portcullis-redis-base)
      write_portcullis_config "$TMP/portcullis-redis-base.yaml" "${PORT[$t]}" "$PCRB_ADMIN_PORT" 1
      start "$t" "$TMP/$t.log" "${SERVER_PIN[@]}" node "${BASE_NODE_FLAGS[@]}" "$BENCH_BASE_DIR/bin/portcullis.js" serve --config "$TMP/portcullis-redis-base.yaml" ;;
  esac
done

probe() { node "$PROBE_JS" "$@"; }
# Runs a command in the background and waits for it: bash runs a trap only once the foreground
# command ends, but interrupts `wait` at once.
run_child() {
  local rc=0
  "$@" &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# ---- readiness and sanity checks --------------------------------------------------------------
SANITY=()
for t in "${TARGET_LIST[@]}"; do
  addr="127.0.0.1:${PORT[$t]}"
  probe "$addr" bench k1=ready 1 20000 > /dev/null || die "$t did not come up on $addr (log: $TMP/$t.log)"
  kill -0 "${PID[$t]}" 2>/dev/null || die "$t exited"
  out="$(probe "$addr" bench k1=a 1)"
  [[ "$(jq -r '.overall[0]' <<< "$out")" == OK ]] || die "$t: domain bench should answer OK, got $out"
  out="$(probe "$addr" bench_sanity "k1=sanity-$t-$$-$RANDOM" 5)"
  codes="$(jq -r '.overall | join(" ")' <<< "$out")"
  if [[ "$t" == noop ]]; then
    SANITY+=("| $t | $codes | (answers OK to everything, by design) |")
  else
    [[ "$codes" == "OK OK OK OVER_LIMIT OVER_LIMIT" ]] \
      || die "$t: bench_sanity (3/minute) should answer OK OK OK OVER_LIMIT OVER_LIMIT, got: $codes"
    SANITY+=("| $t | $codes | enforces limits |")
  fi
  log "$t ready on $addr (sanity: $codes)"
done
if command -v ss >/dev/null 2>&1; then
  for name in "${!PID[@]}"; do
    wild="$(ss -Hltnp 2>/dev/null | grep "pid=${PID[$name]}," | awk '{print $4}' | grep -v '^127\.0\.0\.1:' || true)"
    [[ -z "$wild" ]] || die "$name listens beyond 127.0.0.1: $wild"
  done
fi

# ---- measurement ------------------------------------------------------------------------------
case "$TLS" in
  0) GHZ_TLS=(--insecure) ;;
  1) GHZ_TLS=(--cacert "$CERTS/ca.pem") ;;
  mtls) GHZ_TLS=(--cacert "$CERTS/ca.pem" --cert "$CERTS/client.pem" --key "$CERTS/client-key.pem") ;;
esac
GHZ_ARGS=("${GHZ_TLS[@]}" --proto "$PROTO" --import-paths "$IMPORTS"
  --call envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit
  --disable-template-functions --disable-template-data
  --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --cpus "$GHZ_CPUS"
  --duration-stop ignore)

proc_ticks() { # pid -> utime+stime in clock ticks of it and its live children (a supervisor's workers); 0 if gone
  local pids=("$1") c total=0 t
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do pids+=("$c"); done
  for c in "${pids[@]}"; do
    t="$(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)"
    total=$((total + t))
  done
  echo "$total"
}
busy_ticks() { # all CPUs: every column but idle and iowait
  awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}
redis_stat() { # name: a counter from INFO stats
  redis-cli -p "$REDIS_PORT" info stats | awk -F: -v name="$1" '$1 == name {print $2+0}'
}
redis_cmds() { redis_stat total_commands_processed; }
HZ="$(getconf CLK_TCK)"
# ghz's own CPU time, when GNU time is there (apt-get install -y time); else it counts as "other".
if [[ -x /usr/bin/time ]]; then TIME_CMD=(/usr/bin/time -f '%U %S' -o "$TMP/ghz.time"); else TIME_CMD=(); fi
RUNS_JSONL="$TMP/runs.jsonl"
: > "$RUNS_JSONL"
FAILED=()

START_TS="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
total_runs=$(( ${#SCENARIO_LIST[@]} * RUNS * ${#TARGET_LIST[@]} ))
n=0
for s in "${SCENARIO_LIST[@]}"; do
  for r in $(seq 1 "$RUNS"); do
    for t in "${TARGET_LIST[@]}"; do
      n=$((n + 1))
      addr="127.0.0.1:${PORT[$t]}"
      data="$TMP/data-$s.json"
      out="$TMP/ghz-$s-$t-$r.json"
      log "[$n/$total_runs] $s descriptor$([[ $s == 1 ]] || echo s), run $r, $t: warm-up $WARMUP + $DURATION"
      run_child "${CLIENT_PIN[@]}" "$GHZ" "${GHZ_ARGS[@]}" --data-file "$data" --duration "$WARMUP" \
        --format json --output "$TMP/warmup.json" "$addr" 2> "$TMP/ghz.err" \
        || { cat "$TMP/ghz.err" >&2; die "ghz warm-up failed against $t"; }
      uses_redis=0; [[ "$t" == envoy-ratelimit || "$t" == portcullis-redis* ]] && uses_redis=1
      srv0="$(proc_ticks "${PID[$t]}")"; red0=0; cmd0=0
      if [[ "$NEED_REDIS" == 1 ]]; then red0="$(proc_ticks "${PID[redis]}")"; cmd0="$(redis_cmds)"; fi
      busy0="$(busy_ticks)"; t0="$(date +%s.%N)"
      rm -f "$TMP/ghz.time"
      run_child "${TIME_CMD[@]}" "${CLIENT_PIN[@]}" "$GHZ" "${GHZ_ARGS[@]}" \
        --data-file "$data" --duration "$DURATION" --format json --output "$out" "$addr" 2> "$TMP/ghz.err" \
        || { cat "$TMP/ghz.err" >&2; die "ghz failed against $t"; }
      t1="$(date +%s.%N)"; busy1="$(busy_ticks)"
      srv1="$(proc_ticks "${PID[$t]}")"; red1=0; cmd1=0
      if [[ "$NEED_REDIS" == 1 ]]; then red1="$(proc_ticks "${PID[redis]}")"; cmd1="$(redis_cmds)"; fi
      kill -0 "${PID[$t]}" 2>/dev/null || die "$t died during the run"
      ghz_cpu_s="$(awk '{print $1 + $2}' "$TMP/ghz.time" 2>/dev/null || echo 0)"
      jq -c --arg target "$t" --argjson scenario "$s" --argjson run "$r" \
        --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}')" --argjson hz "$HZ" \
        --argjson srv "$((srv1 - srv0))" --argjson red "$((red1 - red0))" --argjson busy "$((busy1 - busy0))" \
        --argjson ghzcpu "$ghz_cpu_s" --argjson cmds "$((cmd1 - cmd0))" --argjson usesredis "$uses_redis" '
        def pct(p): ((.latencyDistribution // []) | map(select(.percentage == p)) | .[0].latency // 0) / 1e6;
        (.statusCodeDistribution // {}) as $codes |
        {
          target: $target, scenario: $scenario, run: $run,
          count: .count, rps: .rps, p50_ms: pct(50), p99_ms: pct(99), avg_ms: (.average / 1e6),
          errors: (([$codes | to_entries[] | select(.key != "OK") | .value] | add) // 0),
          error_detail: (.errorDistribution // {}),
          server_cores: ($srv / $hz / $wall),
          redis_cores: (if $usesredis == 1 then $red / $hz / $wall else 0 end),
          ghz_cores: ($ghzcpu / $wall),
          other_cores: ([((($busy - $srv - $red) / $hz - $ghzcpu) / $wall), 0] | max),
          redis_cmds_per_req: (if $usesredis == 1 and .count > 0 then $cmds / .count else null end)
        }' "$out" >> "$RUNS_JSONL"
      last="$(tail -n 1 "$RUNS_JSONL")"
      log "    $(jq -r '"rps \(.rps | floor)  p50 \(.p50_ms * 100 | round / 100) ms  p99 \(.p99_ms * 100 | round / 100) ms  errors \(.errors)  server \(.server_cores * 100 | round)% cpu  other \(.other_cores * 100 | round)% cpu"' <<< "$last")"
      if [[ "$(jq -r .errors <<< "$last")" != 0 ]]; then
        log "    $t answered with errors: $(jq -c .error_detail <<< "$last")"
        FAILED+=("$t")
      fi
    done
  done
done

# ---- fixed rate: latency where users live, not only at saturation ---------------------------------
FIXED_JSONL="$TMP/fixed.jsonl"
: > "$FIXED_JSONL"
has_rl=0; for t in "${TARGET_LIST[@]}"; do [[ "$t" == envoy-ratelimit ]] && has_rl=1; done
FIXED="${BENCH_FIXED:-$has_rl}"
if [[ "$FIXED" == 1 ]]; then
  for s in "${SCENARIO_LIST[@]}"; do
    rate="${BENCH_FIXED_RPS:-}"
    if [[ -z "$rate" ]]; then
      rate="$(jq -s --argjson s "$s" '[.[] | select(.scenario == $s and .target == "envoy-ratelimit") | .rps] | sort
        | if length == 0 then 0 else .[length / 2 | floor] / 2 | floor end' "$RUNS_JSONL")"
    fi
    [[ "$rate" -gt 0 ]] || die "fixed rate: no envoy-ratelimit runs to take half of (set BENCH_FIXED_RPS)"
    for r in $(seq 1 "$RUNS"); do
      for t in "${TARGET_LIST[@]}"; do
        addr="127.0.0.1:${PORT[$t]}"
        out="$TMP/fixed-$s-$t-$r.json"
        log "fixed rate $rate/s, $s descriptor(s), run $r, $t: $DURATION"
        srv0="$(proc_ticks "${PID[$t]}")"; red0=0; reads0=0
        [[ "$NEED_REDIS" == 1 ]] && { red0="$(proc_ticks "${PID[redis]}")"; reads0="$(redis_stat total_reads_processed)"; }
        run_child "${CLIENT_PIN[@]}" "$GHZ" "${GHZ_ARGS[@]}" --rps "$rate" --data-file "$TMP/data-$s.json" \
          --duration "$DURATION" --format json --output "$out" "$addr" 2> "$TMP/ghz.err" \
          || { cat "$TMP/ghz.err" >&2; die "ghz (fixed rate) failed against $t"; }
        srv1="$(proc_ticks "${PID[$t]}")"; red1=0; reads1=0
        [[ "$NEED_REDIS" == 1 ]] && { red1="$(proc_ticks "${PID[redis]}")"; reads1="$(redis_stat total_reads_processed)"; }
        uses_redis=0; [[ "$t" == envoy-ratelimit || "$t" == portcullis-redis* ]] && uses_redis=1
        # p99.9 is not in ghz's distribution: take it from every request's latency.
        jq -c --arg target "$t" --argjson scenario "$s" --argjson run "$r" --argjson rate "$rate" --argjson hz "$HZ" \
          --argjson srv "$((srv1 - srv0))" --argjson red "$(( uses_redis == 1 ? red1 - red0 : 0 ))" \
          --argjson reads "$(( uses_redis == 1 ? reads1 - reads0 : 0 ))" '
          def q(p): if length == 0 then 0 else .[((length * p) | ceil) - 1] end;
          ([.details[] | select(.status == "OK") | .latency] | sort) as $l |
          { target: $target, scenario: $scenario, run: $run, rate: $rate, rps: .rps,
            p50_ms: ($l | q(0.5) / 1e6), p99_ms: ($l | q(0.99) / 1e6), p999_ms: ($l | q(0.999) / 1e6),
            errors: ([.details[] | select(.status != "OK")] | length),
            server_us_per_req: ($srv / $hz * 1e6 / .count), redis_us_per_req: ($red / $hz * 1e6 / .count),
            redis_reads_per_req: ($reads / .count) }' "$out" >> "$FIXED_JSONL"
        last="$(tail -n 1 "$FIXED_JSONL")"
        log "    $(jq -r '"rps \(.rps | floor)  p50 \(.p50_ms * 100 | round / 100) ms  p99 \(.p99_ms * 100 | round / 100) ms  p99.9 \(.p999_ms * 100 | round / 100) ms  errors \(.errors)  cpu/req \(.server_us_per_req | round) + \(.redis_us_per_req | round) us  redis reads/req \(.redis_reads_per_req * 100 | round / 100)"' <<< "$last")"
        [[ "$(jq -r .errors <<< "$last")" == 0 ]] || FAILED+=("$t")
        rm -f "$out"
      done
    done
  done
fi

# A last look: the services still answer OK on the bench domain (nothing tripped a limit).
for t in "${TARGET_LIST[@]}"; do
  out="$(probe "127.0.0.1:${PORT[$t]}" bench k1=v1 1)" || die "$t stopped answering"
  [[ "$(jq -r '.overall[0]' <<< "$out")" == OK ]] || { log "$t answers $out after the run"; FAILED+=("$t"); }
done
REDIS_KEYS=""
[[ "$NEED_REDIS" == 1 ]] && REDIS_KEYS="$(redis-cli -p "$REDIS_PORT" dbsize)"

# ---- report -----------------------------------------------------------------------------------
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$HERE/results"
REPORT="$HERE/results/$STAMP.md"
cp "$RUNS_JSONL" "$HERE/results/$STAMP.jsonl"
[[ -s "$FIXED_JSONL" ]] && cp "$FIXED_JSONL" "$HERE/results/$STAMP.fixed.jsonl"

cpu_model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
mem_total="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
go_version="$( (command -v go >/dev/null && go version) || (/usr/local/go/bin/go version 2>/dev/null) || echo n/a)"
pc_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
[[ -n "$(git -C "$ROOT" status --porcelain -- src bin 2>/dev/null | head -n 1)" ]] && pc_rev="$pc_rev + uncommitted changes"
shell_words() { # print args as a shell command line, quoting only what needs it
  local a out=()
  for a in "$@"; do
    if [[ "$a" =~ ^[A-Za-z0-9_./:,=@+%-]+$ ]]; then out+=("$a"); else out+=("'$a'"); fi   # (no ' in our args)
  done
  echo "${out[*]}"
}
ghz_cmd="$(shell_words "${CLIENT_PIN[@]}" "$GHZ" "${GHZ_ARGS[@]}" --data-file "<data-N.json>" --duration "$DURATION" --format json --output "<run.json>" "127.0.0.1:<port>")"
ghz_cmd="${ghz_cmd//$ROOT\//}"

{
  echo "# ShouldRateLimit benchmark — $START_TS"
  echo
  echo "## Machine"
  echo
  echo "- CPUs: $NPROC × $cpu_model; memory $mem_total; kernel $(uname -r)"
  echo "- load average at start: $LOAD_START (1/5/15 min)"
  echo "- Node flags: every Node server ${SHIPPED_FLAGS[*]:-(none)}; the Portcullis targets ${NODE_FLAGS[*]:-(none)}; portcullis-redis-base: ${BASE_NODE_FLAGS[*]:-(none)}; V8 flags for this release (Portcullis sets them on itself, the no-op gets them on its command line): ${RELEASE_FLAGS[*]:-(none)}"
  echo "- node $(node -v), $go_version, redis-server $(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')"
  echo "- ghz $(cat "$BIN/ghz.version"); envoyproxy/ratelimit $(cat "$BIN/envoy-ratelimit.version") (stats: $RL_STATS sink)"
  echo "- Portcullis: $pc_rev; @grpc/grpc-js $(node -p 'require("./node_modules/@grpc/grpc-js/package.json").version')"
  echo
  echo "## Setup"
  echo
  echo "- $PIN_TEXT."
  echo "- Transport (BENCH_TLS=$TLS): $TLS_TEXT."
  echo "- Load: ghz, $CONCURRENCY concurrent workers over $CONNECTIONS HTTP/2 connection$([[ $CONNECTIONS == 1 ]] || echo s), warm-up $WARMUP then $DURATION measured, $RUNS run$([[ $RUNS == 1 ]] || echo s) per target, targets alternated (${TARGET_LIST[*]}) and repeated; the figures are medians over the runs."
  echo "- Requests: domain \`bench\`, values drawn round-robin from $KEYS distinct values per key: 1 descriptor (\`k1\`) or 3 descriptors (\`k1\`, \`k2\`, \`k3\`, one entry each). Limits are $LIMIT/second per value, so every answer is OK and every descriptor is a counter update."
  echo "- Redis: one redis-server 127.0.0.1:$REDIS_PORT (no RDB, no AOF), shared by the Redis targets; $REDIS_KEYS keys at the end."
  echo "- CPU columns are cores used during the measured window (from /proc): *server* is the service, *redis* the redis-server (Redis targets only), *other* everything else on the machine except ghz (kernel network softirq included, so ~0.05–0.1 is normal) — a high *other* means something else was running and that run is suspect."
  echo
  echo "Exact ghz command (paths relative to the repository root; \`<data-N.json>\` holds the $KEYS request bodies of the scenario):"
  echo
  echo '```'
  echo "$ghz_cmd"
  echo '```'
  echo
  echo "Descriptor file (the same directory is envoyproxy/ratelimit's runtime config and Portcullis' \`ratelimit.descriptors\`):"
  echo
  echo '```yaml'
  cat "$DESC_DIR/bench.yaml"
  echo '```'
  echo
  echo "Sanity check before the runs (domain \`bench_sanity\`, 3/minute, 5 requests on one value):"
  echo
  echo "| target | answers | |"
  echo "|---|---|---|"
  printf '%s\n' "${SANITY[@]}"
  jq -r -s --arg targets "$TARGETS" '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def r(d): if . == null then "–" else (. * pow(10; d) | round) / pow(10; d) | tostring end;
    def ratio(a; b): if a == null or b == null or b == 0 then "–" else (a / b * 100 | round) / 100 | tostring end;
    ($targets | split(",")) as $order
    | group_by(.scenario)
    | map(
        . as $rows | $rows[0].scenario as $s
        | ($order | map(. as $t | [$rows[] | select(.target == $t)] | select(length > 0) | {
            target: $t,
            rps: (map(.rps) | median), rmin: (map(.rps) | min), rmax: (map(.rps) | max), p50: (map(.p50_ms) | median), p99: (map(.p99_ms) | median),
            server: (map(.server_cores) | median), redis: (map(.redis_cores) | median),
            other: (map(.other_cores) | max), errors: (map(.errors) | add),
            per_core: (map(.rps / ((.server_cores + .redis_cores) | if . > 0 then . else 1 end)) | median),
            cmds: (map(.redis_cmds_per_req) | if any(. == null) then null else median end)
          })) as $agg
        | ($agg | map({(.target): .}) | add) as $by
        | "\n## \($s) descriptor\(if $s == 1 then "" else "s" end) per request\n\n"
          + "| target | RPS (min–max) | p50 ms | p99 ms | server cores | redis cores | RPS per core (server+redis) | redis cmds/req | errors | max other cores |\n"
          + "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
          + ($agg | map("| \(.target) | \(.rps | r(0)) (\(.rmin | r(0))–\(.rmax | r(0))) | \(.p50 | r(2)) | \(.p99 | r(2)) | \(.server | r(2)) | \(if .target == "envoy-ratelimit" or (.target | startswith("portcullis-redis")) then (.redis | r(2)) else "–" end) | \(.per_core | r(0)) | \(.cmds | r(2)) | \(.errors) | \(.other | r(2)) |") | join("\n"))
          + ( [ ["portcullis-redis", "envoy-ratelimit"], ["portcullis-redis-2w", "envoy-ratelimit"], ["portcullis-redis-2w", "portcullis-redis"], ["portcullis-redis", "portcullis-redis-base"], ["portcullis-redis-base", "envoy-ratelimit"], ["portcullis-memory", "envoy-ratelimit"], ["portcullis-redis", "noop"], ["portcullis-memory", "noop"], ["envoy-ratelimit", "noop"] ]
              | map(select($by[.[0]] != null and $by[.[1]] != null)) as $pairs
              | if ($pairs | length) == 0 then "" else
                  "\n\nRatios (first / second; RPS > 1 and latency < 1 favour the first):\n\n| ratio | RPS | p50 | p99 | RPS per core |\n|---|---:|---:|---:|---:|\n"
                  + ($pairs | map(. as [$a, $b] | "| \($a) / \($b) | \(ratio($by[$a].rps; $by[$b].rps)) | \(ratio($by[$a].p50; $by[$b].p50)) | \(ratio($by[$a].p99; $by[$b].p99)) | \(ratio($by[$a].per_core; $by[$b].per_core)) |") | join("\n"))
                end )
      )
    | join("\n")
  ' "$RUNS_JSONL"
  if [[ -s "$FIXED_JSONL" ]]; then
    echo
    echo "## Fixed rate (ghz --rps; medians over the runs, spread of p99 in brackets)"
    jq -r -s '
      def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
      def r(d): (. * pow(10; d) | round) / pow(10; d) | tostring;
      group_by(.scenario) | map(
        "\n\(.[0].scenario) descriptor(s) at \(.[0].rate) requests/s\n\n| target | achieved RPS | p50 ms | p99 ms | p99.9 ms | service CPU µs/req | redis CPU µs/req | redis read events/req | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        + (group_by(.target) | map("| \(.[0].target) | \(map(.rps) | median | r(0)) | \(map(.p50_ms) | median | r(2)) | \(map(.p99_ms) | median | r(2)) (\(map(.p99_ms) | min | r(2))–\(map(.p99_ms) | max | r(2))) | \(map(.p999_ms) | median | r(2)) | \(map(.server_us_per_req) | median | r(0)) | \(map(.redis_us_per_req) | median | r(0)) | \(map(.redis_reads_per_req) | median | r(2)) | \(map(.errors) | add) |") | join("\n"))
      ) | join("\n")' "$FIXED_JSONL"
  fi
  echo
  echo "## All runs"
  echo
  echo "| descriptors | run | target | RPS | p50 ms | p99 ms | errors | server cores | redis cores | ghz cores | other cores |"
  echo "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  jq -r 'def r(d): (. * pow(10; d) | round) / pow(10; d) | tostring;
    "| \(.scenario) | \(.run) | \(.target) | \(.rps | r(0)) | \(.p50_ms | r(2)) | \(.p99_ms | r(2)) | \(.errors) | \(.server_cores | r(2)) | \(.redis_cores | r(2)) | \(.ghz_cores | r(2)) | \(.other_cores | r(2)) |"' "$RUNS_JSONL"
  other_max="$(jq -s 'map(.other_cores) | max' "$RUNS_JSONL")"
  if awk -v o="$other_max" 'BEGIN { exit !(o > 0.15) }'; then
    echo
    echo "**Warning:** other processes used up to $(awk -v o="$other_max" 'BEGIN { printf "%.2f", o }') cores during some runs; those runs are not clean measurements (see *other cores*)."
  fi
  if [[ ${#FAILED[@]} -gt 0 ]]; then
    echo
    echo "**FAILED:** $(printf '%s\n' "${FAILED[@]}" | sort -u | tr '\n' ' ')(errors during the runs or a non-OK answer afterwards)."
  fi
} > "$REPORT"

cat "$REPORT"
log "report: ${REPORT#$ROOT/} (raw runs: ${REPORT%.md}.jsonl)"
[[ ${#FAILED[@]} -eq 0 ]] || exit 1
