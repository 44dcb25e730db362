#!/usr/bin/env bash
# Where a login's CPU goes, process by process: `make run` of this tree
# (its own PostgreSQL) against the comparison kit's fake Bitbucket, the
# kit's driver logging in for a while, and `perf stat` (task-clock,
# context switches) on every Portico process and on PostgreSQL meanwhile.
# Prints CPU ms and context switches per login (per signed-in page with
# --page), summed over the instances of each service.
#
#   bash tests/bench/per_process.sh KIT_DIR [--page] [CLIENTS] [SECONDS] [VAR=value ...]
#
# KIT_DIR is the comparison kit (its README says where it lives); CLIENTS
# 16 and SECONDS 10 by default; VAR=value settings go to `make run` (for
# example PORTICO_SESSION_CACHE_SECONDS=0 PORTICO_REPOSITORY_CACHE_SECONDS=0
# with --page for the caches-off page). PERF_RECORD=FILE also records a
# call-graph profile of the same processes (perf report -i FILE --sort
# comm,dso,sym). Needs perf (Debian's linux-perf), permission to attach
# to the processes (root, or kernel.perf_event_paranoid <= 1) and bc.
# Run one tree after another, alternating, on a machine otherwise quiet:
# one run moves by 10-20 % against the next.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kit=${1:?usage: per_process.sh KIT_DIR [--page] [CLIENTS] [SECONDS] [VAR=value ...]}
shift
page=
if [[ ${1:-} == --page ]]; then
    page=--page
    shift
fi
clients=16 seconds=10
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    clients=$1
    shift
fi
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
    seconds=$1
    shift
fi
for tool in perf bc node; do
    command -v "$tool" >/dev/null || { echo "per_process.sh: $tool is missing (perf: apt-get install linux-perf)" >&2; exit 1; }
done
for d in driver fastbb; do
    [[ -f "$kit/$d/$([[ $d == driver ]] && echo driver.mjs || echo server.mjs)" ]] || { echo "per_process.sh: $kit is not the comparison kit" >&2; exit 1; }
done
[[ -d "$kit/driver/node_modules" ]] || (cd "$kit/driver" && npm ci --no-audit --no-fund --loglevel=error)

base=${PERF_PORT_BASE:-29392}
fb_port=$base app_port=$((base + 1))
work=$(mktemp -d /tmp/portico-per-process.XXXXXX)
chmod 755 "$work"
fb=http://127.0.0.1:$fb_port/bitbucket
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    sleep 2
    rm -rf "$work"
}
trap cleanup EXIT

FASTBB_PORT=$fb_port FASTBB_USERS=1000 FASTBB_CLIENT_ID=x FASTBB_CLIENT_SECRET=unused-secret-0123456789 \
    FASTBB_REDIRECT_URIS=http://127.0.0.1:9/x setsid node "$kit/fastbb/server.mjs" >"$work/fastbb.log" 2>&1 </dev/null &
fb_pid=$!
pids+=("$fb_pid")
export PORTICO_PUBLIC_URL=http://127.0.0.1:$app_port PORTICO_HTTP_ADDR=127.0.0.1:$app_port
export PORTICO_BITBUCKET_ALLOW=127.0.0.1,localhost PORTICO_SETUP_TOKEN=perf-setup-token-0123456789abcdef
export PERF_FASTBB_URL=$fb PERF_FASTBB_ADMIN=$fb/__fast/applinks
# The per-client budgets lifted (kit_limits.sh); the other ports move off
# their defaults.
. "$root/tests/bench/kit_limits.sh"
# shellcheck disable=SC2086 # KIT_LIMITS is VAR=value words
env PORTICO_RUN_DIR="$work/run" PORTICO_RUN_PG_PORT=$((base + 2)) PORTICO_DEMO_BITBUCKET=0 \
    PORTICO_OPS_ADDR=127.0.0.1:$((base + 3)) PORTICO_RUN_HEALTH_PORT=$((base + 4)) $KIT_LIMITS "$@" \
    setsid make -C "$root" --no-print-directory run >"$work/portico.log" 2>&1 </dev/null &
run_pid=$!
pids+=("$run_pid")
for _ in $(seq 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$app_port/readyz" && break
    kill -0 "$run_pid" 2>/dev/null || { tail -20 "$work/portico.log"; exit 1; }
    sleep 0.5
done
node "$root/tests/bench/peer_setup.mjs" >"$work/setup.log" 2>&1 || { tail -5 "$work/setup.log"; exit 1; }
driver=(node "$kit/driver/driver.mjs" --app "http://127.0.0.1:$app_port" $page --concurrency "$clients")
"${driver[@]}" --duration 4 --warmup 1 --quiet >/dev/null # warm-up: caches, connections, first logins

# Portico's processes, and PostgreSQL's postmaster and backends (pg_ctl
# starts them in a session of their own).
declare -A comm
pg_pid=$(head -1 "$work/run/pg/data/postmaster.pid" 2>/dev/null || true)
for p in $(pgrep -g "$run_pid") ${pg_pid:+$pg_pid $(pgrep -P "$pg_pid")}; do
    c=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    case $c in portico-* | postgres) comm[$p]=$c ;; esac
done
stats=()
for p in "${!comm[@]}"; do
    perf stat -e task-clock,context-switches -p "$p" -o "$work/stat.$p" -- sleep $((seconds + 2)) &
    stats+=($!)
done
if [[ -n ${PERF_RECORD:-} ]]; then
    list=$(
        IFS=,
        echo "${!comm[*]}"
    )
    perf record -g -o "$PERF_RECORD" -p "$list" -- sleep "$seconds" >/dev/null 2>&1 &
    stats+=($!)
fi
sleep 0.5
"${driver[@]}" --duration "$seconds" --warmup 0 --cpu "postgres=$pg_pid,fastbb=$fb_pid" --json-out "$work/d.jsonl" >"$work/driver.txt"
wait "${stats[@]}" 2>/dev/null || true
grep -v '^{' "$work/driver.txt"
n=$(node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").pop();const j=JSON.parse(l);console.log(j.ok??j.logins??j.count)' "$work/d.jsonl")
what=$([[ -n $page ]] && echo page || echo login)
echo "${what}s measured: $n ($clients clients, $seconds s)"
declare -A ms cs
for p in "${!comm[@]}"; do
    f=$work/stat.$p c=${comm[$p]}
    # "<not counted>" for a process that never ran meanwhile (an idle backend)
    t=$(awk '/task-clock/ { gsub(",", "", $1); if ($1 ~ /^[0-9.]+$/) print $1 }' "$f" 2>/dev/null)
    x=$(awk '/context-switches/ { gsub(",", "", $1); if ($1 ~ /^[0-9.]+$/) print $1 }' "$f" 2>/dev/null)
    ms[$c]=$(echo "${ms[$c]:-0} + ${t:-0}" | bc)
    cs[$c]=$(echo "${cs[$c]:-0} + ${x:-0}" | bc)
done
for c in "${!ms[@]}"; do
    printf '%-18s cpu %6.3f ms/%s  context switches %6.1f /%s\n' "$c" "$(echo "${ms[$c]} / $n" | bc -l)" "$what" \
        "$(echo "${cs[$c]} / $n" | bc -l)" "$what"
done | sort
