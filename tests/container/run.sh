#!/usr/bin/env bash
# Container tests: Portico as compose.yaml deploys it, for real.
#   1. Docker: start dockerd when it is not running (installing docker.io,
#      docker-compose and debootstrap when missing).
#   2. Make debian:bookworm-slim locally when it cannot be pulled.
#   3. Build the images (docker/Dockerfile targets, docker/postgres).
#   4. `compose --profile demo up -d` with throwaway secrets, on loopback ports.
#   5. tests/container/drive.mjs: isolation checks, the setup walkthrough, logins,
#      broker scaling 1 -> 3, a broker killed during a burst of logins, the
#      registry's bus key rotated during logins, the registry and PostgreSQL
#      restarted.
#   6. `compose down -v`, and nothing of the project is left.
#   7. (CTEST_SWARM=1, the default) the same compose.yaml on a single-node
#      Swarm: `docker stack deploy`, every service healthy, one login; removed.
#   8. (CTEST_SWARM3=1; CI runs it on its own after this script) tests/container/swarm3.sh: three nodes.
# Prints timings and one closing line "container: N passed, N failed".
# Environment: CTEST_PROJECT (portico-ctest), CTEST_WEB_PORT (18080),
# CTEST_DEMO_PORT (17990), CTEST_SWARM (1), CTEST_SWARM3 (1), CTEST_KEEP=1 leaves it running.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

# compose.yaml reads PORTICO_* from the environment: start from a clean slate
# so a variable meant for other tests (PORTICO_DATABASE_URL...) cannot leak in.
# PORTICO_IMAGE_PREFIX alone is kept: the images are built under that name.
prefix=${PORTICO_IMAGE_PREFIX:-portico/}
for v in $(compgen -e | grep '^PORTICO_' || true); do unset "$v"; done
export PORTICO_IMAGE_PREFIX=$prefix

project=${CTEST_PROJECT:-portico-ctest}
web_port=${CTEST_WEB_PORT:-18080}
demo_port=${CTEST_DEMO_PORT:-17990}
swarm=${CTEST_SWARM:-1}
artifacts=$root/tests/artifacts/container
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/portico-ctest.XXXXXX)
started_dockerd=""
tag=container
. tests/container/lib.sh

# ---- 1. Docker ---------------------------------------------------------------
t=$(now)
if ! bash tests/container/ensure-docker.sh 3>"$work/dockerd.pid"; then
  echo "container: 0 passed, 1 failed"
  exit 1
fi
started_dockerd=$(cat "$work/dockerd.pid")
# Compose: v2 when the docker CLI has it, else Debian's docker-compose 1.29.
if docker compose version >/dev/null 2>&1; then
  compose_bin=(docker compose)
else
  command -v docker-compose >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  compose_bin=(docker-compose)
fi
compose=("${compose_bin[@]}" -p "$project" -f "$root/compose.yaml" --profile demo)
say "compose: $("${compose_bin[@]}" version 2>/dev/null | head -1); engine: $(docker version -f '{{.Server.Version}}')"
timings+=("docker ready: $(since "$t")s")

cleanup() {
  local rc=$?
  if [ "${CTEST_KEEP:-0}" != 1 ]; then
    "${compose[@]}" down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    PORTICO_DATABASE_URL=x "${compose_bin[@]}" -p "$project-ext" -f "$root/compose.yaml" -f "$root/docker/external-db.yaml" \
      down -v -t 2 >/dev/null 2>&1 || true
    docker rm -f -v "$project-extdb" >/dev/null 2>&1 || true
    docker stack rm "$project" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  if [ -n "$started_dockerd" ] && [ "${CTEST_KEEP:-0}" != 1 ]; then
    kill "$started_dockerd" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Leftovers of an earlier, interrupted run.
"${compose[@]}" down -v --remove-orphans -t 2 >/dev/null 2>&1 || true

# ---- 2. base image -------------------------------------------------------------
t=$(now)
check "base image debian:bookworm-slim" bash tests/container/make-base-image.sh
timings+=("base image: $(since "$t")s")

# ---- 3. images -----------------------------------------------------------------
t=$(now)
build_images() { bash tests/container/build-images.sh "$prefix" "$artifacts"; }
check "images build" build_images
timings+=("image builds: $(since "$t")s")
if ((fail)); then
  say "the images do not build: nothing to test (logs: $artifacts/build-*.log)"
  summary container
  exit 1
fi
sizes() {
  local i s ok=0
  for i in web registry broker bitbucket demo-bitbucket postgres; do
    s=$(docker image inspect -f '{{.Size}}' "${prefix}$i:latest" 2>/dev/null || echo 0)
    say "image ${prefix}$i: $(awk -v s="$s" 'BEGIN { printf "%.1f MB", s / 1e6 }')"
    if [ "$s" = 0 ] || { [ "$i" != postgres ] && [ "$s" -ge 100000000 ]; }; then ok=1; fi
  done
  return $ok
}
check "service images under 100 MB" sizes

# ---- 4. up -----------------------------------------------------------------------
# As on a fresh clone: no secrets/ folder and nothing made by hand; the
# init-secrets service makes the key and the password on this first start.
export PORTICO_PUBLISH=127.0.0.1:$web_port
export PORTICO_PUBLIC_URL=http://127.0.0.1:$web_port
export PORTICO_DEMO_PUBLISH=127.0.0.1:$demo_port
export PORTICO_DEMO_AUTO_APPROVE=jdoe
# The drive makes a few hundred logins from this one address: above the
# per-client limits a person never reaches (tests/system/edge.test.mjs
# covers the limits themselves).
export PORTICO_LOGIN_RATE_PER_MINUTE=100000 PORTICO_CALLBACK_RATE_PER_MINUTE=100000
t=$(now)
up() {
  timeout 300 "${compose[@]}" up -d --no-build >"$artifacts/up.log" 2>&1 || { tail -20 "$artifacts/up.log"; return 1; }
  local i
  for i in $(seq 1 120); do
    curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$web_port/readyz" 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}
check "compose --profile demo up (no secrets made beforehand): web ready" up
timings+=("compose up until /readyz: $(since "$t")s")
[ ! -e "$root/secrets" ] || say "note: $root/secrets exists, but compose.yaml does not read it"

# The generated secrets: where the first-start log says, with the modes
# init-secrets promises, and the same after another `up` (never replaced).
secrets_volume() {
  docker run --rm --network none --entrypoint sh -v "${project}_secrets:/s:ro" "${prefix}registry:latest" \
    -c 'cd /s && stat -c "%n %a %u:%g %s" db_password secret_key && sha256sum secret_key db_password'
}
generated_secrets() {
  local before after
  "${compose[@]}" logs --no-color init-secrets >"$artifacts/init-secrets.log" 2>&1
  grep -q 'BACK IT UP' "$artifacts/init-secrets.log" || { say "the first-start log does not ask for a backup"; return 1; }
  grep -q 'made a new database password' "$artifacts/init-secrets.log" || return 1
  ! grep -E -q '[A-Za-z0-9+/]{43}=' "$artifacts/init-secrets.log" || { say "a key-like value in the log"; return 1; }
  before=$(secrets_volume) || return 1
  say "generated secrets: $(echo "$before" | head -2 | tr '\n' ';')"
  echo "$before" | grep -q '^db_password 440 10001:10001 40$' || return 1
  echo "$before" | grep -q '^secret_key 400 10001:10001 45$' || return 1
  timeout 300 "${compose[@]}" up -d --no-build >>"$artifacts/up.log" 2>&1 || return 1
  # Nothing else waits for it this time: wait for the one-shot to finish.
  timeout 60 docker wait "$("${compose[@]}" ps -q init-secrets)" >/dev/null || return 1
  local init_log
  init_log=$("${compose[@]}" logs --no-color init-secrets 2>&1)
  grep -q 'kept (made on first start; never replaced)' <<<"$init_log" || return 1
  after=$(secrets_volume) || return 1
  [ "$before" = "$after" ] || { say "the secrets changed on a second up"; return 1; }
}
check "secrets made on first start: 0440/0400, logged with a backup note, kept on the next up" generated_secrets

# Every container of the project (init-secrets included): no capabilities, no
# privilege gain, a read-only root, a pids and a memory limit; and a write to
# the root file system really fails.
hardened() {
  local c line bad=0
  for c in $(docker ps -aq --filter "label=com.docker.compose.project=$project"); do
    line=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} caps={{.HostConfig.CapDrop}} ro={{.HostConfig.ReadonlyRootfs}} sec={{.HostConfig.SecurityOpt}} pids={{.HostConfig.PidsLimit}} mem={{.HostConfig.Memory}}' "$c")
    case $line in
    *"caps=[ALL]"*"ro=true"*"no-new-privileges:true"*) ;;
    *) say "not hardened: $line"; bad=1; continue ;;
    esac
    echo "$line" | grep -Eq 'pids=[1-9][0-9]* mem=[1-9][0-9]*$' || { say "no limits: $line"; bad=1; }
  done
  for c in web registry broker bitbucket postgres demo-bitbucket; do
    if "${compose[@]}" exec -T "$c" sh -c 'echo x > /usr/local/probe' >/dev/null 2>&1; then
      say "$c: the root file system is writable"; bad=1
    fi
    "${compose[@]}" exec -T "$c" sh -c 'echo x > /tmp/probe && rm /tmp/probe' >/dev/null 2>&1 ||
      { say "$c: /tmp is not writable"; bad=1; }
  done
  grep -q 'NoNewPrivs:[[:space:]]*1' <("${compose[@]}" exec -T web cat /proc/self/status) || { say "web: NoNewPrivs not set"; bad=1; }
  grep -q 'CapEff:[[:space:]]*0000000000000000' <("${compose[@]}" exec -T registry cat /proc/self/status) || { say "registry: has capabilities"; bad=1; }
  return $bad
}
check "containers: cap_drop ALL, no-new-privileges, read-only root with /tmp, pids and memory limits" hardened

# The bus between containers is CURVE: each server's ZMTP greeting, read by a
# keyless peer on the bus network, names the CURVE mechanism (and the peer
# then gets nothing more). The greeting sent is a NULL one, as any plain
# ZeroMQ client's.
bus_is_curve() {
  local ep out bad=0
  for ep in registry/5551 bitbucket/5552 web/5553; do
    # A service still starting has nothing to say yet (an empty read): ask
    # again, up to 5 times. A greeting that names another mechanism fails.
    for try in 1 2 3 4 5; do
      out=$(docker run --rm --network "${project}_bus" --entrypoint bash "${prefix}web:latest" -c '
      exec 3<>"/dev/tcp/$0" || exit 1
      printf "\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL" >&3
      head -c 48 /dev/zero >&3
      timeout 3 head -c 64 <&3 | tr -c "A-Z" "."' "$ep" 2>/dev/null)
      [ -n "$(echo "$out" | tr -d '.')" ] && break
      sleep 2
    done
    say "bus greeting of $ep: $(echo "$out" | tr -s '.')"
    case $out in *CURVE*) ;; *) bad=1 ;; esac
  done
  return $bad
}
check "the bus between containers is CURVE (registry, bitbucket, the web's broker port)" bus_is_curve
# The web's broker port listens on the bus network alone: from a container on
# "edge" only, the web's HTTP port answers (so "web" resolves and is
# reachable there) but a connection to 5553 is refused. Brokers, on "bus",
# still reach it: bus_is_curve above and every login of the drive.
broker_port_not_on_edge() {
  local out
  out=$(docker run --rm --network "${project}_edge" --entrypoint bash "${prefix}web:latest" -c '
    exec 3<>/dev/tcp/web/8080 && echo http=open || echo http=closed
    if timeout 3 bash -c "exec 3<>/dev/tcp/web/5553" 2>/dev/null; then echo bus=open; else echo bus=closed; fi' 2>&1)
  say "from the edge network: $(echo $out)"
  case $out in *http=open*bus=closed*) return 0 ;; *) return 1 ;; esac
}
check "the web's broker port does not answer on the edge network" broker_port_not_on_edge
"${compose[@]}" ps
if [ "${failed[*]}" != "${failed[*]/compose --profile demo up/}" ]; then
  for s in web registry broker bitbucket postgres demo-bitbucket; do
    "${compose[@]}" logs --no-color "$s" >"$artifacts/$s.log" 2>&1 || true
    say "--- last lines of $s"; tail -5 "$artifacts/$s.log"
  done
  summary container
  exit 1
fi

# ---- 5. drive ----------------------------------------------------------------------
t=$(now)
# bus_probe (built here, run in containers of the web image) for the
# rotation step: the old registry key must get no answer.
mkdir -p "$work/probe" && chmod 0777 "$work/probe"
make -s build/tests/bus_probe >/dev/null && cp build/tests/bus_probe "$work/probe/"
drive() {
  CTEST_PROBE_DIR=$work/probe CTEST_OPS_CONTAINER="[\"docker\",\"ps\",\"-q\",\"--filter\",\"label=com.docker.compose.project=$project\",\"--filter\",\"label=com.docker.compose.service=web\"]" \
    CTEST_WEB=http://127.0.0.1:$web_port CTEST_DEMO_INTERNAL=http://demo-bitbucket:7990/bitbucket \
    CTEST_DEMO_HOST=http://127.0.0.1:$demo_port CTEST_PROJECT=$project \
    CTEST_COMPOSE=$(printf '%s\n' "${compose[@]}" | node -e 'console.log(JSON.stringify(require("fs").readFileSync(0,"utf8").trim().split("\n")))') \
    timeout 900 node tests/container/drive.mjs 2>&1 | tee "$artifacts/drive.log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^drive: [0-9]+ passed, [0-9]+ failed' "$artifacts/drive.log" | tail -1)
  if [ -n "$line" ]; then
    set -- $line
    pass=$((pass + $2))
    fail=$((fail + $4))
    (($4)) && failed+=("drive: $4 step(s)")
  else
    fail=$((fail + 1))
    failed+=("drive (crashed)")
  fi
  return "$rc"
}
drive
timings+=("drive: $(since "$t")s")

# Logs for a later look (secrets never reach the logs; the setup token does).
for s in web registry broker bitbucket postgres demo-bitbucket; do
  "${compose[@]}" logs --no-color "$s" >"$artifacts/$s.log" 2>&1 || true
done

# ---- 6. down -v ------------------------------------------------------------------
t=$(now)
down_clean() {
  timeout 120 "${compose[@]}" down -v --remove-orphans -t 10 >"$artifacts/down.log" 2>&1 || return 1
  local c n v
  c=$(docker ps -aq --filter "label=com.docker.compose.project=$project" | wc -l)
  n=$(docker network ls -q --filter "label=com.docker.compose.project=$project" | wc -l)
  v=$(docker volume ls -q --filter "label=com.docker.compose.project=$project" | wc -l)
  say "after down -v: $c containers, $n networks, $v volumes of project $project"
  [ "$c$n$v" = 000 ]
}
if [ "${CTEST_KEEP:-0}" = 1 ]; then
  say "CTEST_KEEP=1: leaving $project running"
else
  check "down -v leaves nothing behind" down_clean
fi
timings+=("down -v: $(since "$t")s")

# ---- 6b. external PostgreSQL -----------------------------------------------------
# What the README says: another PostgreSQL (here a container of our own
# image, published on the docker0 address of this host), PORTICO_DATABASE_URL
# and docker/external-db.yaml, the bundled postgres scaled to 0.
external_db() {
  local gw ext=${project}-extdb rc=0
  gw=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
  [ -n "$gw" ] || gw=$(ip -4 -o addr show docker0 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
  [ -n "$gw" ] || { say "no address of docker0 found"; return 1; }
  docker rm -f -v "$ext" >/dev/null 2>&1 || true
  # The operator's own database and its password, given as a file: it wins
  # over a generated one (docker/external-db.yaml).
  bash docker/make-secrets.sh "$work/secrets" >/dev/null || return 1
  export PORTICO_SECRETS_DIR=$work/secrets
  docker run -d --name "$ext" -v "$work/secrets/db_password:/run/secrets/db_password:ro" \
    -p "$gw:25432:5432" "${prefix}postgres" >/dev/null || return 1
  for _ in $(seq 1 60); do
    [ "$(docker inspect -f '{{.State.Health.Status}}' "$ext")" = healthy ] && break
    sleep 1
  done
  local ext_compose=("${compose_bin[@]}" -p "$project-ext" -f "$root/compose.yaml" -f "$root/docker/external-db.yaml")
  PORTICO_DATABASE_URL="postgresql://portico@$gw:25432/portico?connect_timeout=5" \
    timeout 300 "${ext_compose[@]}" up -d --no-build --scale postgres=0 >"$artifacts/external-db.log" 2>&1 || rc=1
  if ((rc == 0)); then
    rc=1
    for _ in $(seq 1 120); do
      curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$web_port/readyz" 2>/dev/null && { rc=0; break; }
      sleep 0.5
    done
  fi
  "${ext_compose[@]}" logs --no-color registry >>"$artifacts/external-db.log" 2>&1
  grep -q "connected to the database.*db=$gw:25432/portico" "$artifacts/external-db.log" || rc=1
  [ -z "$(docker ps -q --filter "label=com.docker.compose.project=$project-ext" --filter label=com.docker.compose.service=postgres)" ] || rc=1
  PORTICO_DATABASE_URL=x timeout 120 "${ext_compose[@]}" down -v -t 5 >>"$artifacts/external-db.log" 2>&1 || rc=1
  docker rm -f -v "$ext" >/dev/null 2>&1 || rc=1
  return $rc
}
if [ "${CTEST_KEEP:-0}" != 1 ]; then
  t=$(now)
  check "external PostgreSQL (docker/external-db.yaml, postgres scaled to 0)" external_db
  timings+=("external PostgreSQL: $(since "$t")s")
fi

# ---- 7. swarm ----------------------------------------------------------------------
if [ "$swarm" = 1 ] && [ "${CTEST_KEEP:-0}" != 1 ]; then
  t=$(now)
  # No secrets folder beforehand: stack-deploy.sh makes it on the first deploy.
  check "docker stack deploy on a single-node swarm (no secrets made beforehand)" \
    bash tests/container/swarm.sh "$project" "$work/swarm-secrets" "$web_port" "$demo_port"
  timings+=("swarm: $(since "$t")s")
fi

# ---- 8. three-node swarm -------------------------------------------------------------
# tests/container/swarm3.sh: three Docker engines in containers, a node lost,
# drained and every service rolled during logins (its own networks, its own
# names; it removes all it made). Its figures are in tests/artifacts/swarm3.
if [ "${CTEST_SWARM3:-0}" = 1 ] && [ "${CTEST_KEEP:-0}" != 1 ]; then
  t=$(now)
  check "three-node swarm: a node lost, a node drained, every service rolled during logins (swarm3.sh)" \
    env S3_BUILD=0 timeout 2400 bash tests/container/swarm3.sh
  timings+=("three-node swarm: $(since "$t")s")
fi

summary container
