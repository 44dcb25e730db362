#!/usr/bin/env bash
# make bench: every benchmark prints its figures next to a baseline measured
# in the same run. Nothing here asserts a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "== bus"
build/bench/bus_bench "${PORTICO_BENCH_ITERATIONS:-20000}"
for b in tests/bench/*.sh; do
  [ "$(basename "$b")" = run.sh ] && continue
  echo "== $(basename "$b" .sh)"
  bash "$b" || echo "bench: $(basename "$b") failed"
done
for b in tests/bench/*.mjs; do
  [ -f "$b" ] || continue
  # peer_compare.sh's set-up step, not a benchmark.
  [ "$(basename "$b")" = peer_setup.mjs ] && continue
  echo "== $(basename "$b" .mjs)"
  node "$b" || echo "bench: $(basename "$b") failed"
done
