#!/usr/bin/env bash
# Build every tests/fuzz/fuzz_*.c with libFuzzer + ASan + UBSan and run each
# for the given number of seconds (default 60). Lines "fuzz-sources: ..." in
# a target name the service files it needs besides common/.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build/fuzz
mkdir -p "$out"
make -s build/libportico.a >/dev/null   # generates the protobuf code
pkgs="libczmq libzmq libprotobuf-c libcurl libcrypto jansson yajl"
cflags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c17 -D_GNU_SOURCE \
  -Icommon -Iservices -isystem build/gen $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) -lcivetweb -lpthread"
status=0
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  extra=$(sed -n 's/.*fuzz-sources:\(.*\)$/\1/p' "$src" | tr ' ' '\n' | grep '\.c$' | tr '\n' ' ' || true)
  clang $cflags -o "$out/$name" "$src" common/*.c build/gen/*.pb-c.c $extra $libs
  corpus="$out/corpus/$name"
  mkdir -p "$corpus"
  [ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  if ! "$out/$name" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$out/$name-" "$corpus" >"$out/$name.log" 2>&1; then
    echo "fuzz: $name FOUND A CRASH (see $out/$name.log)"
    tail -40 "$out/$name.log"
    status=1
  else
    grep -E '^stat::number_of_executed_units' "$out/$name.log" | sed "s/^/fuzz: $name /" || true
  fi
done
exit $status
