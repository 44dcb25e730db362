#!/usr/bin/env bash
# Registry service tests: build portico-registry and the cmocka test binary,
# start a private PostgreSQL (scripts/pg.sh) and one registry with a fresh
# key on free ports, run every test group against them, then stop the
# registry (checking it exits 0 within 5 s) and clean up. Exit status is
# non-zero when anything failed. REGISTRY_BIN=path tests another build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$root"

pkgs=(libczmq libzmq libprotobuf-c libcurl libpq libcrypto jansson cmocka)
# REGISTRY_BIN tests another build of the registry (e.g. with sanitizers).
bin=${REGISTRY_BIN:-$root/build/bin/portico-registry}
test_bin=build/tests/registry-service-test

make -s build/bin/portico-registry build/libportico.a
mkdir -p build/tests
# shellcheck disable=SC2046
cc -std=c17 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wcast-qual \
    -Werror -isystem build/gen -Icommon -Iservices $(pkg-config --cflags "${pkgs[@]}") \
    -o "$test_bin" tests/service/registry/*.c services/registry/db.c build/libportico.a $(pkg-config --libs "${pkgs[@]}") -lcivetweb -lpthread

pg_bin=
for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pg_ctl" ]] && pg_bin=$d; done

tmp=$(mktemp -d /tmp/portico-registry-test.XXXXXX)
chmod 711 "$tmp" # the postgres user must reach the cluster folder inside
reg_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    local rc=$?
    if [[ -n "$reg_pid" ]] && kill -0 "$reg_pid" 2>/dev/null; then
        kill -TERM "$reg_pid" 2>/dev/null || true
        wait "$reg_pid" 2>/dev/null || true
    fi
    bash scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
    if ((rc != 0)); then
        mkdir -p tests/artifacts
        cp "$tmp"/*.log tests/artifacts/ 2>/dev/null || true
        echo "registry logs copied to tests/artifacts/" >&2
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT INT TERM

# Below the kernel's ephemeral range, whose ports it also gives to outgoing
# connections (one could take the port before its server binds it).
port_lo=$(awk '{ print ($1 > 11024 ? $1 : 32768) }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local p
    while :; do
        p=$((port_lo - 10000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
}

conninfo=$(bash scripts/pg.sh start "$tmp/pg" 5432)
# The bus's CURVE keys: the registry's, and the web's and broker's the tests speak with.
export PORTICO_BUS_KEYS_DIR=$tmp/bus-keys
for s in web registry broker bitbucket; do "$bin" bus-keygen "$s"; done
head -c 32 /dev/urandom | base64 >"$tmp/key"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -subj "/CN=Portico Test CA" -days 2 \
    -out "$tmp/ca.pem" >/dev/null 2>&1

bus_port=$(free_port)
health_port=$(free_port)
unset PORTICO_SETUP_TOKEN PORTICO_SECRET_KEY_FILE_PREVIOUS
export PORTICO_DATABASE_URL=$conninfo
export PORTICO_SECRET_KEY_FILE=$tmp/key
export PORTICO_REGISTRY_BIND=tcp://127.0.0.1:$bus_port
export PORTICO_HEALTH_ADDR=127.0.0.1:$health_port
export PORTICO_SWEEP_INTERVAL_S=1
export PORTICO_SETUP_TOKEN_FILE=$tmp/setup-token
# REG_TEST_WRAPPER runs the registry under a tool, e.g. "valgrind --leak-check=full".
# shellcheck disable=SC2086
${REG_TEST_WRAPPER:-} "$bin" >"$tmp/registry.log" 2>&1 &
reg_pid=$!
# 30 s at most, bounded by time so that a loaded machine waits as long.
ready_by=$((SECONDS + 30))
while ((SECONDS < ready_by)); do
    "$bin" healthcheck && break
    kill -0 "$reg_pid" 2>/dev/null || { cat "$tmp/registry.log" >&2; exit 1; }
    sleep 0.1
done
"$bin" healthcheck || { echo "the registry did not become ready" >&2; exit 1; }

export REG_TEST_ENDPOINT=$PORTICO_REGISTRY_BIND
export REG_TEST_DB=$conninfo
export REG_TEST_PGHOST=$tmp/pg
export REG_TEST_PGPORT=5432
export REG_TEST_PGSH=$root/scripts/pg.sh
export REG_TEST_PGBIN=$pg_bin
export REG_TEST_BIN=$bin
export REG_TEST_LOG=$tmp/registry.log
export REG_TEST_TMP=$tmp
export REG_TEST_PID=$reg_pid
export REG_TEST_CA_PEM=$tmp/ca.pem

status=0
"$test_bin" || status=1

# Graceful stop: exit status 0 within 5 s.
started=$(date +%s%N)
kill -TERM "$reg_pid"
stop_status=0
wait "$reg_pid" || stop_status=$?
reg_pid=
took=$((($(date +%s%N) - started) / 1000000))
echo "registry stopped with exit status $stop_status in $took ms"
if ((stop_status != 0 || took >= 5000)); then
    echo "FAILED: the registry must exit 0 within 5 s of SIGTERM" >&2
    status=1
fi
exit $status
