#!/usr/bin/env bash
# Registry benchmark: session lookups/s and login write paths/s over the bus
# with N concurrent clients, printed next to pgbench -S (select-only) and
# pgbench -N (simple update) run on the same private cluster in the same
# run, with the ratios. Figures only; nothing is asserted.
#
#   PORTICO_BENCH_CLIENTS (8)  PORTICO_BENCH_SECONDS (5)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
clients=${PORTICO_BENCH_CLIENTS:-8}
seconds=${PORTICO_BENCH_SECONDS:-5}
pkgs=(libczmq libzmq libprotobuf-c libcurl libpq libcrypto jansson)

make -s build/bin/portico-registry build/libportico.a
mkdir -p build/bench
# shellcheck disable=SC2046
cc -std=c17 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -isystem build/gen -Icommon $(pkg-config --cflags "${pkgs[@]}") \
    -o build/bench/registry_bench tests/bench/registry_bench.c build/libportico.a $(pkg-config --libs "${pkgs[@]}") \
    -lcivetweb -lpthread

pg_bin=
for d in /usr/lib/postgresql/*/bin; do [[ -x "$d/pgbench" ]] && pg_bin=$d; done
tmp=$(mktemp -d /tmp/portico-registry-bench.XXXXXX)
chmod 711 "$tmp"
reg_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [[ -n "$reg_pid" ]] && kill -TERM "$reg_pid" 2>/dev/null; then
        wait "$reg_pid" 2>/dev/null || true
    fi
    bash scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Below the kernel's ephemeral range, whose ports it also gives to outgoing
# connections (one could take the port before its server binds it).
port_lo=$(awk '{ print ($1 > 11024 ? $1 : 32768) }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
    local p
    while :; do
        p=$((port_lo - 10000 + RANDOM % 10000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

conninfo=$(bash scripts/pg.sh start "$tmp/pg" 5432)
head -c 32 /dev/urandom | base64 >"$tmp/key"
export PORTICO_DATABASE_URL=$conninfo PORTICO_SECRET_KEY_FILE=$tmp/key PORTICO_SETUP_TOKEN_FILE=$tmp/setup-token
export PORTICO_BUS_KEYS_DIR=$tmp/bus-keys
for s in web registry broker; do build/bin/portico-registry bus-keygen "$s"; done
bus_port=$(free_port)
health_port=$(free_port)
export PORTICO_REGISTRY_BIND=tcp://127.0.0.1:$bus_port PORTICO_HEALTH_ADDR=127.0.0.1:$health_port
export PORTICO_LOG_LEVEL=warn
build/bin/portico-registry >"$tmp/registry.log" 2>&1 &
reg_pid=$!
# 30 s at most, bounded by time so that a loaded machine waits as long.
ready_by=$((SECONDS + 30))
until build/bin/portico-registry healthcheck; do
    if ((SECONDS >= ready_by)) || ! kill -0 "$reg_pid" 2>/dev/null; then
        echo "registry_bench: the registry did not become ready" >&2
        tail -20 "$tmp/registry.log" >&2
        exit 1
    fi
    sleep 0.1
done

out=$(build/bench/registry_bench "$PORTICO_REGISTRY_BIND" "$clients" "$seconds")
echo "$out" | grep -v '^RESULT'
lookup=$(echo "$out" | sed -n 's/^RESULT session_lookup=//p')
login=$(echo "$out" | sed -n 's/^RESULT login_write_path=//p')

# The baseline: PostgreSQL itself, same cluster, same client count.
pgb() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$pg_bin/pgbench" "$@"; else "$pg_bin/pgbench" "$@"; fi
}
psql_as() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$pg_bin/psql" "$@"; else "$pg_bin/psql" "$@"; fi
}
psql_as -h "$tmp/pg" -p 5432 -U portico -d postgres -Xqc "CREATE DATABASE pgbench" >/dev/null
pgb -h "$tmp/pg" -p 5432 -U portico -i -q -s 10 pgbench >/dev/null 2>&1
tps() { sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | head -1; }
sel=$(pgb -h "$tmp/pg" -p 5432 -U portico -M prepared -S -c "$clients" -j "$clients" -T "$seconds" pgbench 2>/dev/null | tps)
upd=$(pgb -h "$tmp/pg" -p 5432 -U portico -M prepared -N -c "$clients" -j "$clients" -T "$seconds" pgbench 2>/dev/null | tps)
printf '  %-22s %9.0f /s   (pgbench -S -M prepared, %d clients)\n' "pgbench_select_only" "$sel" "$clients"
printf '  %-22s %9.0f /s   (pgbench -N -M prepared, %d clients)\n' "pgbench_simple_update" "$upd" "$clients"
awk -v a="$lookup" -v b="$sel" -v c="$login" -v d="$upd" 'BEGIN {
    printf "  ratio session_lookup / pgbench -S:   %.3f\n", a / b
    printf "  ratio login_write_path / pgbench -N: %.3f  (one login = 3 registry calls, 3 commits; pgbench -N = 3 statements + BEGIN/END)\n", c / d
}'
