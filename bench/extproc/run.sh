#!/usr/bin/env bash
# `npm run bench:extproc`: builds, then runs bench/extproc/run.ts (see its header for what is measured and the knobs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || npm run --silent build
exec node dist/bench/extproc/run.js
