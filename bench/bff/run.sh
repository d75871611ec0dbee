#!/usr/bin/env bash
# `npm run bench:bff`: builds, then runs the composer benchmark (bench/bff/run.ts; knobs documented there).
# Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
command -v wrk >/dev/null || { echo "bench:bff: wrk is missing (apt-get install wrk)" >&2; exit 1; }
[[ "${BENCH_SKIP_BUILD:-0}" == 1 ]] || npm run --silent build
exec node dist/bench/bff/run.js
