#!/usr/bin/env bash
# `npm run bench:gateway`: see bench/gateway/bench.ts. Installs wrk (apt) when missing, builds, runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if ! command -v wrk >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { echo "bench:gateway: wrk is missing (apt-get install wrk)" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk >/dev/null
fi
[[ ${BENCH_SKIP_BUILD:-0} == 1 ]] || npm run --silent build
node dist/bench/gateway/bench.js
