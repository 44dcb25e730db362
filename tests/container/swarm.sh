#!/usr/bin/env bash
# The same compose.yaml on a single-node Swarm, through docker/stack-deploy.sh:
# every service converges and is healthy, then drive.mjs (CTEST_MODE=swarm)
# does the setup walkthrough and logins over both broker replicas. Removes the
# stack, its volume and (when this script made it) the swarm again.
#   tests/container/swarm.sh STACK SECRETS_DIR WEB_PORT DEMO_PORT
# Images must be built already (run.sh does that).
set -uo pipefail
cd "$(dirname "$0")/../.."
stack=$1 secrets=$2 web_port=$3 demo_port=$4
artifacts=tests/artifacts/container
say() { echo "[swarm] $*"; }
made_swarm=0
rc=0

if [ "$(docker info -f '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null || { say "swarm init failed"; exit 1; }
  made_swarm=1
  say "made a single-node swarm"
fi

remove() {
  docker stack rm "$stack" >/dev/null 2>&1 || true
  local i
  for i in $(seq 1 60); do
    [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$stack")" ] &&
      [ -z "$(docker network ls -q --filter "label=com.docker.stack.namespace=$stack")" ] && break
    sleep 1
  done
  docker volume rm "${stack}_pgdata" >/dev/null 2>&1 || true
  docker volume ls -q --filter "label=com.docker.stack.namespace=$stack" | xargs -r docker volume rm >/dev/null 2>&1 || true
  if ((made_swarm)); then
    docker swarm leave --force >/dev/null 2>&1 || true
    docker network rm docker_gwbridge >/dev/null 2>&1 || true
  fi
  local left
  left=$( (docker ps -aq --filter "label=com.docker.stack.namespace=$stack"
    docker network ls -q --filter "label=com.docker.stack.namespace=$stack"
    docker volume ls -q --filter "label=com.docker.stack.namespace=$stack"
    docker secret ls -q --filter "label=com.docker.stack.namespace=$stack" 2>/dev/null) | wc -l)
  say "after stack rm: $left objects of stack $stack left"
  [ "$left" = 0 ]
}
trap 'st=$?; remove || st=1; exit $st' EXIT

export PORTICO_SECRETS_DIR=$secrets
export PORTICO_PUBLISH=$web_port
export PORTICO_PUBLIC_URL=http://127.0.0.1:$web_port
export PORTICO_DEMO_PUBLISH=$demo_port
export PORTICO_DEMO_AUTO_APPROVE=jdoe
export PORTICO_LOGIN_RATE_PER_MINUTE=100000 PORTICO_CALLBACK_RATE_PER_MINUTE=100000
export PORTICO_STACK_PROFILES=demo
t=$(date +%s)
bash docker/stack-deploy.sh "$stack" >"$artifacts/swarm-deploy.log" 2>&1 || { cat "$artifacts/swarm-deploy.log"; exit 1; }
# The first deploy made the secrets nobody provided, and said to back them up.
if [ ! -s "$secrets/secret_key" ] || [ ! -s "$secrets/db_password" ] || ! grep -q 'BACK IT UP' "$artifacts/swarm-deploy.log"; then
  say "stack-deploy.sh did not make the secrets in $secrets"
  exit 1
fi

# Converged: every service n/n, every task container healthy.
converged() {
  local line
  while read -r line; do
    set -- $line
    [ "${2%%/*}" = "${2##*/}" ] || return 1
  done < <(docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Name}} {{.Replicas}}')
  [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack" --filter health=starting)" ] &&
    [ -z "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack" --filter health=unhealthy)" ] &&
    [ -n "$(docker ps -q --filter "label=com.docker.stack.namespace=$stack")" ]
}
service_logs() {
  local s
  for s in web registry broker bitbucket postgres demo-bitbucket; do
    docker service logs --raw "${stack}_$s" >"$artifacts/swarm-$s.log" 2>&1 || true
  done
}
for _ in $(seq 1 120); do converged && break; sleep 1; done
docker service ls --filter "label=com.docker.stack.namespace=$stack"
if ! converged; then
  say "did not converge in 120 s"
  docker stack ps --no-trunc "$stack" | head -20
  service_logs
  exit 1
fi
say "all services converged and healthy in $(($(date +%s) - t))s"

CTEST_MODE=swarm CTEST_WEB=http://127.0.0.1:$web_port CTEST_DEMO_INTERNAL=http://demo-bitbucket:7990/bitbucket \
  CTEST_OPS_CONTAINER="[\"docker\",\"ps\",\"-q\",\"--filter\",\"label=com.docker.swarm.service.name=${stack}_web\"]" \
  CTEST_DEMO_HOST=http://127.0.0.1:$demo_port CTEST_REGISTRY_LOGS="[\"sh\",\"-c\",\"docker exec \$(docker ps -q --filter label=com.docker.swarm.service.name=${stack}_registry | head -1) portico-registry setup-token\"]" \
  timeout 300 node tests/container/drive.mjs 2>&1 | tee "$artifacts/swarm-drive.log"
rc=${PIPESTATUS[0]}
((rc)) && say "drive failed (exit $rc)"
service_logs
exit "$rc" # the EXIT trap removes everything, and fails the run when something is left
