#!/usr/bin/env bash
# `npm run demo`: Envoy + Portcullis + Redis + a sample upstream on this machine, using the example configs in
# envoy/, then a few curl commands that show the limits at work. Runs until Ctrl-C; DEMO_ONESHOT=1 exits right after
# the curl commands (for smoke tests).
#
#   client ──▶ Envoy :8080 (admin :9901) ──▶ upstream :8000
#                 │
#                 ▼
#            Portcullis gRPC :8081 (admin :9091) ──▶ redis-server on a free port (in-memory store without one)
#
# Environment: ENVOY_BIN (else .venv/bin/envoy), DEMO_ONESHOT=1, DEMO_SKIP_SETUP=1 (do not run scripts/setup.sh),
# DEMO_STORE=memory (in-memory store even when redis-server is installed).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

if [[ ${DEMO_SKIP_SETUP:-0} != 1 ]]; then
  PORTCULLIS_SETUP_REDIS_OPTIONAL=1 bash scripts/setup.sh
fi

envoy_bin=${ENVOY_BIN:-$root/.venv/bin/envoy}
[[ -x $envoy_bin ]] || { echo "demo: no Envoy at $envoy_bin (run scripts/setup.sh or set ENVOY_BIN)" >&2; exit 1; }

# Fixed ports of the example configs (envoy/ratelimit.yaml, envoy/portcullis.yaml).
envoy_port=8080 envoy_admin=9901 upstream_port=8000 portcullis_grpc=8081 portcullis_admin=9091

work=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-demo.XXXXXX")
pids=()
names=()

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "demo: error: $*" >&2
  local i
  for i in "${!names[@]}"; do
    if [[ -s $work/${names[i]}.log ]]; then
      echo "--- last lines of the ${names[i]} log ---" >&2
      tail -n 20 "$work/${names[i]}.log" >&2
    fi
  done
  exit 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start NAME COMMAND...: runs COMMAND in the background, output to $work/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

# wait_until DESCRIPTION COMMAND...: polls COMMAND for up to 20s; fails if a started process died meanwhile.
wait_until() {
  local what=$1 i j
  shift
  for ((i = 0; i < 200; i++)); do
    "$@" && return 0
    for j in "${!pids[@]}"; do
      kill -0 "${pids[j]}" 2>/dev/null || fail "${names[j]} exited while waiting for $what"
    done
    sleep 0.1
  done
  fail "timed out waiting for $what"
}

for port in $envoy_port $envoy_admin $upstream_port $portcullis_grpc $portcullis_admin; do
  port_in_use "$port" && fail "port $port is already in use (the demo uses 8000, 8080, 8081, 9091 and 9901)"
done

# --- Redis, or the in-memory store -----------------------------------------------------------------------------
redis_url=
if [[ ${DEMO_STORE:-redis} != memory ]] && command -v redis-server >/dev/null 2>&1; then
  redis_port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
  start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work"
  wait_until "redis-server on port $redis_port" port_in_use "$redis_port"
  redis_url=redis://127.0.0.1:$redis_port
  store="Redis at $redis_url"
else
  store="the in-memory store"
fi

# --- Portcullis: envoy/portcullis.yaml with the demo's Redis (or none) and absolute descriptor paths -------------
REDIS_URL=$redis_url CONFIG_IN=envoy/portcullis.yaml CONFIG_OUT=$work/portcullis.yaml node --input-type=module -e '
  import { readFileSync, writeFileSync } from "node:fs";
  import path from "node:path";
  import { parseDocument } from "yaml";
  const input = process.env.CONFIG_IN;
  const doc = parseDocument(readFileSync(input, "utf8"));
  if (process.env.REDIS_URL) doc.setIn(["redis", "url"], process.env.REDIS_URL);
  else doc.delete("redis");
  doc.setIn(["ratelimit", "descriptors"], path.resolve(path.dirname(input), String(doc.getIn(["ratelimit", "descriptors"]))));
  writeFileSync(process.env.CONFIG_OUT, doc.toString());
'
start portcullis node bin/portcullis.js serve --config "$work/portcullis.yaml"
wait_until "Portcullis to listen" grep -q '"msg":"portcullis listening"' "$work/portcullis.log"
wait_until "Portcullis /readyz" curl -fsS -o /dev/null "http://127.0.0.1:$portcullis_admin/readyz"

# --- upstream and Envoy ------------------------------------------------------------------------------------------
start upstream node dist/test/support/upstream.js --port "$upstream_port"
wait_until "the upstream on port $upstream_port" port_in_use "$upstream_port"

start envoy "$envoy_bin" -c envoy/ratelimit.yaml --concurrency 1 --use-dynamic-base-id -l warning
wait_until "Envoy /ready" sh -c "curl -fsS 'http://127.0.0.1:$envoy_admin/ready' 2>/dev/null | grep -q LIVE"
wait_until "the Envoy listener on port $envoy_port" port_in_use "$envoy_port"

# --- show it -----------------------------------------------------------------------------------------------------
bold= normal=
if [[ -t 1 ]]; then
  bold=$(tput bold 2>/dev/null || true)
  normal=$(tput sgr0 2>/dev/null || true)
fi

# show COMMAND: prints the command line, then runs it.
show() {
  printf '\n%s$ %s%s\n' "$bold" "$1" "$normal"
  bash -c "$1" || true
  echo
}

cat <<EOF

Portcullis demo is running (store: $store)
  Envoy          http://localhost:$envoy_port     admin http://127.0.0.1:$envoy_admin
  Portcullis     gRPC 127.0.0.1:$portcullis_grpc       admin http://127.0.0.1:$portcullis_admin (/healthz /readyz /metrics /config)
  upstream       http://127.0.0.1:$upstream_port
  logs           $work/*.log
Limits: envoy/ratelimit/portcullis-demo.yaml; which request produces which descriptor: envoy/ratelimit.yaml.
EOF

user_a="alice-$RANDOM" user_b="bob-$RANDOM" user_c="carol-$RANDOM"

echo
echo "${bold}5 requests per minute per x-user-id: 200 five times, then 429${normal}"
show "for i in 1 2 3 4 5 6 7; do curl -s -o /dev/null -w '%{http_code} ' -H 'x-user-id: $user_a' localhost:$envoy_port/; done"
echo "${bold}Envoy adds the x-ratelimit-* headers from Portcullis' answer${normal}"
show "curl -si -H 'x-user-id: $user_a' localhost:$envoy_port/ | grep -iE '^(HTTP|x-ratelimit|x-envoy-ratelimited)'"
echo "${bold}Another user has a budget of its own${normal}"
show "curl -si -H 'x-user-id: $user_b' localhost:$envoy_port/ | grep -iE '^(HTTP|x-ratelimit)'"
echo "${bold}/search costs 5 per request (hits_addend) out of 20 per minute${normal}"
show "for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{http_code} remaining=%header{x-ratelimit-remaining}\n' -H 'x-user-id: $user_c' localhost:$envoy_port/search; done"
echo "${bold}/reports: 3 per week (w=604800) and the 5 per minute; the headers show the tighter one${normal}"
show "curl -si -H 'x-user-id: $user_c' localhost:$envoy_port/reports | grep -iE '^(HTTP|x-ratelimit)'"

if [[ ${DEMO_ONESHOT:-0} == 1 ]]; then
  exit 0
fi

cat <<EOF
Try your own requests (e.g. the commands above with another x-user-id). Ctrl-C stops everything.
EOF
while :; do
  for i in "${!pids[@]}"; do
    kill -0 "${pids[i]}" 2>/dev/null || fail "${names[i]} exited"
  done
  sleep 1
done
