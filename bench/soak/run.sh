#!/usr/bin/env bash
# `npm run soak`: builds, then runs the soak (bench/soak/run.ts; knobs documented there). Needs redis-server for
# SOAK_VARIANT=workers. Minutes long by design: not part of `npm test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[[ "${BENCH_SKIP_BUILD:-0}" == 1 ]] || npm run --silent build
exec node dist/bench/soak/run.js
