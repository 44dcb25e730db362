#!/usr/bin/env bash
# Run every unit-test binary given; print each suite's summary; fail if any fails.
set -u
failed=0
for t in "$@"; do
  [ -x "$t" ] || continue
  if ! out=$("$t" 2>&1); then
    echo "$out"
    echo "unit: FAILED $(basename "$t")"
    failed=$((failed + 1))
  else
    echo "$out" | grep -E '^\[  PASSED  \]' | sed "s/^/unit: $(basename "$t") /"
  fi
done
exit $((failed > 0))
