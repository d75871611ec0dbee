#!/usr/bin/env bash
# Runs every test tier (unit, integration, e2e) against real redis-server and Envoy binaries.
# Fails if any tier fails or runs no test at all: a tier that silently ran nothing is a failure.
# Usage: scripts/test.sh [unit|integration|e2e ...]   (default: all three)
set -uo pipefail
cd "$(dirname "$0")/.."

tiers=("$@")
[ ${#tiers[@]} -gt 0 ] || tiers=(unit integration e2e)

npm run --silent build || { echo "build failed" >&2; exit 1; }

total_pass=0
total_fail=0
status=0
logdir=$(mktemp -d)
for tier in "${tiers[@]}"; do
  dir="dist/test/$tier"
  concurrency=()
  [ "$tier" = unit ] || concurrency=(--test-concurrency=1)
  echo "== $tier tests"
  if [ ! -d "$dir" ]; then
    echo "tier $tier has no tests ($dir missing)" >&2
    status=1
    continue
  fi
  # The files themselves: Node 20 runs the tests under a directory it is given, Node 22 reads it as a file to load.
  mapfile -t files < <(find "$dir" -name '*.test.js' | sort)
  if [ ${#files[@]} -eq 0 ]; then
    echo "tier $tier has no tests (no *.test.js under $dir)" >&2
    status=1
    continue
  fi
  node --test "${concurrency[@]}" --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$logdir/$tier.tap" "${files[@]}"
  rc=$?
  pass=$(grep -E '^# pass ' "$logdir/$tier.tap" | tail -1 | awk '{print $3}')
  fail=$(grep -E '^# fail ' "$logdir/$tier.tap" | tail -1 | awk '{print $3}')
  pass=${pass:-0}
  fail=${fail:-0}
  echo "== $tier: $pass passed, $fail failed"
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
  if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then status=1; fi
  if [ "$pass" -eq 0 ]; then
    echo "tier $tier ran no test" >&2
    status=1
  fi
done
rm -rf "$logdir"
echo "total: $total_pass passed, $total_fail failed"
exit "$status"
