#!/usr/bin/env bash
# Fuzz targets of portico-bitbucket (libFuzzer, with ASan and UBSan).
#
#   tests/fuzz/build_bb.sh          build build/fuzz/fuzz_bb_json
#   tests/fuzz/build_bb.sh 30       build, then run each target for 30 s
#
# Equivalent by hand:
#   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
#     -std=c17 -D_GNU_SOURCE -Icommon -Iservices -isystem build/gen $(pkg-config --cflags jansson yajl libcurl) \
#     tests/fuzz/fuzz_bb_json.c services/bitbucket/bb_{text,form,header,status,pick,json}.c common/url.c common/buserr.c \
#     build/gen/bitbucket.pb-c.c build/gen/envelope.pb-c.c \
#     $(pkg-config --libs jansson yajl libcurl libprotobuf-c) -o build/fuzz/fuzz_bb_json
#   build/fuzz/fuzz_bb_json -max_total_time=30 build/fuzz/corpus_bb_json tests/fuzz/corpus/fuzz_bb_json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
seconds="${1:-0}"

make -s build/gen/bitbucket.pb-c.c build/gen/envelope.pb-c.c
mkdir -p build/fuzz
# shellcheck disable=SC2046
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-std=c17 -D_GNU_SOURCE -Wall -Wextra -Icommon -Iservices -isystem build/gen \
	$(pkg-config --cflags jansson yajl libcurl libprotobuf-c) \
	tests/fuzz/fuzz_bb_json.c services/bitbucket/bb_{text,form,header,status,pick,json}.c common/url.c common/buserr.c \
	build/gen/bitbucket.pb-c.c build/gen/envelope.pb-c.c \
	$(pkg-config --libs jansson yajl libcurl libprotobuf-c) -o build/fuzz/fuzz_bb_json
echo "built build/fuzz/fuzz_bb_json"

if [[ "$seconds" -gt 0 ]]; then
	mkdir -p build/fuzz/corpus_bb_json
	build/fuzz/fuzz_bb_json -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix=build/fuzz/ \
		build/fuzz/corpus_bb_json tests/fuzz/corpus/fuzz_bb_json
fi
