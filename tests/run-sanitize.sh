#!/usr/bin/env bash
# `make test-sanitize`: the unit tests, the registry's and the Bitbucket
# service's tests, the system and the browser tests, against the four
# services built with AddressSanitizer (LeakSanitizer included) and
# UndefinedBehaviorSanitizer (the Makefile builds them in BUILD/sanitize).
# Every report a sanitizer writes fails the run, even when the test around
# it passed: a leak is reported when a service exits, after its test has
# looked.
#
#   bash tests/run-sanitize.sh SANITIZE_BUILD_DIR
set -u -o pipefail
cd "$(dirname "$0")/.." || exit 1
san=$(cd "${1:?usage: run-sanitize.sh SANITIZE_BUILD_DIR}" && pwd)
reports=$(mktemp -d /tmp/portico-sanitize.XXXXXX)
trap 'rm -rf "$reports"' EXIT
mkdir -p tests/artifacts/sanitize
rm -f tests/artifacts/sanitize/*

# Reports go to files (a service's stderr is often its test's log only).
# A test preloads libfaketime into the Bitbucket service: ASan must not
# insist on coming first. UBSan reports and goes on, so that one run shows
# every finding; the report file fails the run.
export ASAN_OPTIONS=log_path=$reports/asan:detect_leaks=1:verify_asan_link_order=0
export UBSAN_OPTIONS=print_stacktrace=1:log_path=$reports/ubsan
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitize.supp:print_suppressions=0

# The system tests take every binary from one folder: the emulator is the
# usual build (it is test equipment, not Portico).
ln -sf "$PWD/build/bin/bitbucket-emulator" "$san/bin/bitbucket-emulator"

# REG_TEST_SLOW: a sanitized registry takes long to exit after closing its
# bus socket; the registry test's stop check leaves that time out.
fail=0
step() {
  echo "=== sanitize: $1"
  shift
  "$@" || { fail=$((fail + 1)); echo "=== sanitize: FAILED"; }
}
step "unit tests" bash tests/run-unit.sh "$san"/tests/test_*
step "service registry" env REGISTRY_BIN="$san/bin/portico-registry" REG_TEST_SLOW=1 bash tests/service/registry/run.sh
step "service bitbucket" env BITBUCKET_BIN="$san/bin/portico-bitbucket" bash tests/service/bitbucket/run.sh
step "system" env PORTICO_TEST_BIN="$san/bin" node --test --test-concurrency=1 --test-reporter=dot tests/system/*.test.mjs
step "browser" env PORTICO_TEST_BIN="$san/bin" node --test --test-concurrency=1 --test-reporter=dot tests/browser/*.test.mjs

found=$(find "$reports" -type f | wc -l)
if ((found > 0)); then
  cp "$reports"/* tests/artifacts/sanitize/
  echo "sanitize: $found report(s), kept in tests/artifacts/sanitize/:"
  for f in "$reports"/*; do
    echo "--- $(basename "$f")"
    head -n 30 "$f"
  done
fi
echo "sanitize: $fail failed step(s), $found sanitizer report(s)"
((fail == 0 && found == 0))
