#!/usr/bin/env bash
# The whole test suite after the unit tests: service tests (real PostgreSQL),
# the emulator's own tests, system tests (every process on loopback), browser
# tests (headless Chromium) and a short fuzzing run. Prints one summary line.
set -u
cd "$(dirname "$0")/.."
mkdir -p tests/artifacts
pass=0
fail=0
failed_names=()

step() {
  local name=$1
  shift
  echo "=== $name"
  if "$@"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    failed_names+=("$name")
    echo "=== $name FAILED"
  fi
}

# Node's test runner for the system and browser layers.
node_tests() {
  local files=()
  for f in "$@"; do [ -f "$f" ] && files+=("$f"); done
  ((${#files[@]})) || return 0
  node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
}

for s in tests/service/*/run.sh; do
  [ -f "$s" ] && step "service $(basename "$(dirname "$s")")" bash "$s"
done
step "emulator" node_tests tests/emulator/*.test.mjs
step "system" node_tests tests/system/*.test.mjs
step "browser" node_tests tests/browser/*.test.mjs
step "fuzz smoke" bash tests/fuzz/run.sh "${PORTICO_FUZZ_SECONDS:-10}"

echo
echo "suites: $pass passed, $fail failed"
((fail == 0)) || { echo "failed: ${failed_names[*]}"; exit 1; }
