#!/usr/bin/env bash
# Container test: compose.yaml with every Portico service scaled to two
# (`--scale web=2 --scale registry=2 --scale bitbucket=2 --scale broker=2`),
# the webs published on a range of ports (one each), against one PostgreSQL.
# Checks that every web is ready (it reaches a registry and a bitbucket
# service), that every web has the workers of both brokers (brokers find
# every web by its compose name), that each web reaches both registries
# and both bitbucket services by name, and that the schema was migrated by
# one registry only. Images are built under their own prefix; nothing of
# other projects is touched. Prints "container-scale: N passed, N failed".
# Environment: CTEST_PROJECT (portico-scale), PORTICO_IMAGE_PREFIX
# (portico-scale/), CTEST_SCALE_PORT (28080: webs on it and the next).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
for v in $(compgen -e | grep '^PORTICO_' | grep -v '^PORTICO_IMAGE_PREFIX$' || true); do unset "$v"; done
project=${CTEST_PROJECT:-portico-scale}
export PORTICO_IMAGE_PREFIX=${PORTICO_IMAGE_PREFIX:-portico-scale/}
port=${CTEST_SCALE_PORT:-28080}
artifacts=$root/tests/artifacts/container-scale
mkdir -p "$artifacts"
pass=0
fail=0
say() { echo "[scale] $*"; }
check() {
  local name=$1
  shift
  if "$@"; then pass=$((pass + 1)); say "ok   $name"; else fail=$((fail + 1)); say "FAIL $name"; fi
}
finish() {
  echo "container-scale: $pass passed, $fail failed"
  ((fail == 0))
}

bash tests/container/ensure-docker.sh || { fail=1; finish; exit 1; }
if docker compose version >/dev/null 2>&1; then compose_bin=(docker compose); else compose_bin=(docker-compose); fi
compose=("${compose_bin[@]}" -p "$project" -f "$root/compose.yaml")
cleanup() { [ "${CTEST_KEEP:-0}" = 1 ] || "${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

build() {
  bash tests/container/make-base-image.sh >"$artifacts/base.log" 2>&1 || return 1
  local target
  for target in registry bitbucket broker web; do
    docker build -q -f docker/Dockerfile --target "$target" -t "${PORTICO_IMAGE_PREFIX}$target:latest" . \
      >"$artifacts/build-$target.log" 2>&1 || { tail -20 "$artifacts/build-$target.log"; return 1; }
  done
  docker build -q -t "${PORTICO_IMAGE_PREFIX}postgres:latest" docker/postgres >"$artifacts/build-postgres.log" 2>&1
}
check "images build (${PORTICO_IMAGE_PREFIX})" build
((fail)) && { finish; exit 1; }

export PORTICO_PUBLISH=127.0.0.1:$port-$((port + 1))
export PORTICO_PUBLIC_URL=http://127.0.0.1:$port
up() {
  timeout 300 "${compose[@]}" up -d --no-build --scale web=2 --scale registry=2 --scale bitbucket=2 --scale broker=2 \
    >"$artifacts/up.log" 2>&1 || { tail -20 "$artifacts/up.log"; return 1; }
}
check "compose up with two of each service" up

webs_ready() {
  local p i
  for p in "$port" $((port + 1)); do
    for i in $(seq 1 120); do
      curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$p/readyz" 2>/dev/null && break
      [ "$i" = 120 ] && { say "no ready web on port $p"; return 1; }
      sleep 0.5
    done
  done
}
check "both webs ready, each on its own published port" webs_ready

# Each web's detailed /readyz counts the broker workers connected to it:
# two brokers of PORTICO_BROKER_WORKERS (8) each.
brokers_reach_every_web() {
  local c body i
  for c in $("${compose[@]}" ps -q web); do
    for i in $(seq 1 60); do
      body=$(bash tests/container/ops-get.sh "$c" /readyz 2>/dev/null)
      grep -q '(16 workers connected)' <<<"$body" && break
      [ "$i" = 60 ] && { say "web $c: $(tr '\n' ' ' <<<"$body")"; return 1; }
      sleep 1
    done
  done
}
check "every web has the workers of both brokers" brokers_reach_every_web

# Inside the bus network each service's name stands for both of its
# containers: what the clients resolve and connect to, one by one.
names_resolve_to_both() {
  local c svc n
  c=$("${compose[@]}" ps -q web | head -1)
  for svc in registry bitbucket web; do
    n=$(docker exec "$c" getent ahostsv4 "$svc" | awk '{ print $1 }' | sort -u | wc -l)
    [ "$n" = 2 ] || { say "$svc resolves to $n addresses in a web container"; return 1; }
  done
}
check "service names resolve to both instances" names_resolve_to_both

migrated_once() {
  local c n=0 logs
  # The whole log is read before grep looks at it: `docker logs | grep -q`
  # under pipefail fails whenever grep quits before docker logs has written
  # everything (SIGPIPE), and a log that grows makes that likelier.
  for c in $("${compose[@]}" ps -q registry); do
    logs=$(docker logs "$c" 2>&1)
    grep -q 'applied schema migration' <<<"$logs" && n=$((n + 1))
  done
  [ "$n" = 1 ] || { say "$n registries applied migrations"; return 1; }
}
check "one registry migrated the schema, the other found it current" migrated_once

"${compose[@]}" logs --no-color >"$artifacts/compose.log" 2>&1 || true
finish
