#!/usr/bin/env bash
# The whole test suite after the unit tests: service tests (real PostgreSQL),
# the emulator's own tests, system tests (every process on loopback), browser
# tests (headless Chromium) and a short fuzzing run. Prints one summary line.
set -u -o pipefail
cd "$(dirname "$0")/.."
mkdir -p tests/artifacts
pass=0
fail=0
failed_names=()

# Each suite's output is also kept in tests/artifacts/suite-<name>.log, so
# that the end of the run can say why a suite failed (CI shows the end).
step() {
  local name=$1
  shift
  echo "=== $name"
  if "$@" 2>&1 | tee "tests/artifacts/suite-${name// /-}.log"; then
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
((fail == 0)) && exit 0
# Why each suite failed, in few lines: the node runner's list of failing
# tests with their first error lines, else the suite's last lines.
for name in "${failed_names[@]}"; do
  log="tests/artifacts/suite-${name// /-}.log"
  echo "--- why: $name"
  if grep -q '^✖ failing tests:' "$log"; then
    # Each failing test's name and the first lines of its error (up to the
    # stack), an error repeated for the next tests (a failed hook) once.
    sed -n '/^✖ failing tests:/,$p' "$log" | awk '
      /^✖ failing tests:/ { next }
      /^✖ / { if (err != "" && err != last) printf "%s", err; last = err; err = ""; print; grab = 1; n = 0; next }
      grab && (/^ +at / || /^test at /) { grab = 0; next }
      grab && NF && n < 6 { err = err substr($0, 1, 200) "\n"; n++ }
      END { if (err != "" && err != last) printf "%s", err }' | head -n 60
    grep -h '^\[harness\]' "$log" | head -n 10
  elif grep -qE '^(FAIL|ERROR|not ok)|^\[ +(FAILED|ERROR) +\]' "$log"; then
    # cmocka's and the suites' own failure lines.
    grep -E '^(FAIL|ERROR|not ok)|^\[ +(FAILED|ERROR) +\]' "$log" | cut -c1-200 | head -n 20
  else
    tail -n 15 "$log" | cut -c1-200
  fi
done
echo "failed: ${failed_names[*]}"
exit 1
