#!/usr/bin/env bash
# make run: the whole system on this machine, in the foreground.
#   - a private PostgreSQL under run/pg when PORTICO_DATABASE_URL is unset
#   - a secret key in run/secret.key when PORTICO_SECRET_KEY_FILE is unset
#   - the bus's CURVE key pairs in run/bus-keys when PORTICO_BUS_KEYS_DIR is
#     unset (made once, secret halves mode 0600, reused afterwards)
#   - the demo Bitbucket (the emulator) when PORTICO_DEMO_BITBUCKET is not 0
#   - registry, bitbucket, web and PORTICO_RUN_BROKERS (default 2) brokers
# Ctrl-C stops everything, PostgreSQL included.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state=${PORTICO_RUN_DIR:-$root/run}
mkdir -p "$state/logs"
bin=$root/build/bin
pids=()
names=()   # names[i] is pids[i]'s, and its log is $state/logs/<name>.log
offsets=() # where this run's lines start in that log (logs are appended to)
pg_started=0

# Ctrl-C is the normal way out (status 0); a failed start keeps its status.
# shellcheck disable=SC2317 # run by the traps below
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "portico: stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((pg_started)); then bash scripts/pg.sh stop "$state/pg" >/dev/null 2>&1 || true; fi
  echo "portico: stopped"
  exit "$1"
}
trap 'stop_all 0' INT TERM
trap 'stop_all $?' EXIT

# When one of our processes has stopped: say which, with what its log says
# of this run (its errors, or its last lines when it logged none), and end
# the run with status 1.
exit_if_one_stopped() {
  local i log run lines
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null && continue
    log=$state/logs/${names[$i]}.log
    run=$(tail -c "+$((offsets[i] + 1))" "$log" 2>/dev/null || true)
    lines=$(grep -E 'level=(error|fatal)' <<<"$run" | tail -n 5 || true)
    [ -n "$lines" ] || lines=$(tail -n 5 <<<"$run")
    echo "portico: ${names[$i]} stopped; from $log:" >&2
    printf '%s\n' "$lines" | sed 's/^/  /' >&2
    exit 1
  done
}

# Remember where name's log ends before its process starts.
log_offset() {
  offsets+=("$(stat -c %s "$state/logs/$1.log" 2>/dev/null || echo 0)")
  names+=("$1")
}

# A database of an earlier run holds secrets sealed with that run's key.
had_db=0
if [ -z "${PORTICO_DATABASE_URL:-}" ] && [ -d "$state/pg" ]; then had_db=1; fi
if [ -z "${PORTICO_SECRET_KEY_FILE:-}" ] && [ ! -s "$state/secret.key" ] && ((had_db)); then
  echo "portico: $state/secret.key is gone, but $state/pg holds secrets sealed with it (client secrets," >&2
  echo "  tokens): a new key would not open them. Put the old file back, or remove $state to start afresh." >&2
  exit 1
fi
if [ -z "${PORTICO_DATABASE_URL:-}" ]; then
  echo "portico: starting a private PostgreSQL in $state/pg"
  PORTICO_DATABASE_URL=$(bash scripts/pg.sh start "$state/pg" "${PORTICO_RUN_PG_PORT:-55432}" | tail -1)
  export PORTICO_DATABASE_URL
  pg_started=1
fi
if [ -z "${PORTICO_SECRET_KEY_FILE:-}" ]; then
  if [ ! -s "$state/secret.key" ]; then
    (umask 077 && head -c 32 /dev/urandom | base64 >"$state/secret.key")
  fi
  export PORTICO_SECRET_KEY_FILE=$state/secret.key
fi
# One CURVE key pair per service; each service admits only its callers' keys.
export PORTICO_BUS_KEYS_DIR=${PORTICO_BUS_KEYS_DIR:-$state/bus-keys}
for s in web registry broker bitbucket; do
  "$bin/portico-$s" bus-keygen
done
# Everything runs on this machine: the bus goes over Unix sockets in the
# state folder (still CURVE), which costs less per message than TCP on
# loopback and cannot collide with another instance's ports. Compose and
# other deployments keep tcp://.
mkdir -p "$state/bus"
export PORTICO_REGISTRY_BIND=${PORTICO_REGISTRY_BIND:-ipc://$state/bus/registry}
export PORTICO_REGISTRY_ENDPOINT=${PORTICO_REGISTRY_ENDPOINT:-$PORTICO_REGISTRY_BIND}
export PORTICO_BITBUCKET_BIND=${PORTICO_BITBUCKET_BIND:-ipc://$state/bus/bitbucket}
export PORTICO_BITBUCKET_ENDPOINT=${PORTICO_BITBUCKET_ENDPOINT:-$PORTICO_BITBUCKET_BIND}
export PORTICO_BROKER_BIND=${PORTICO_BROKER_BIND:-ipc://$state/bus/broker}
export PORTICO_BROKER_ENDPOINT=${PORTICO_BROKER_ENDPOINT:-$PORTICO_BROKER_BIND}
export PORTICO_PUBLIC_URL=${PORTICO_PUBLIC_URL:-http://localhost:8080}
# The generated setup token goes to a file only its owner can read, never to a log.
export PORTICO_SETUP_TOKEN_FILE=${PORTICO_SETUP_TOKEN_FILE:-$state/setup-token}

demo_url=""
if [ "${PORTICO_DEMO_BITBUCKET:-1}" != 0 ]; then
  demo_addr=${PORTICO_DEMO_BITBUCKET_ADDR:-127.0.0.1:7990}
  demo_url="http://$demo_addr/bitbucket"
  # The demo listens on loopback, which integrations may reach only as a
  # named exception.
  export PORTICO_BITBUCKET_ALLOW=${PORTICO_BITBUCKET_ALLOW:+$PORTICO_BITBUCKET_ALLOW,}${demo_addr%:*}
  # Its application links are kept in the state folder: an integration set
  # up against it still works after the next `make run`.
  log_offset demo-bitbucket
  "$bin/bitbucket-emulator" --listen "$demo_addr" --context /bitbucket --version "${PORTICO_DEMO_BITBUCKET_VERSION:-8.9.0}" \
    --state "$state/demo-bitbucket.json" >>"$state/logs/demo-bitbucket.log" 2>&1 &
  pids+=($!)
fi

start() {
  local name=$1
  shift
  log_offset "$name"
  env "$@" "$bin/portico-${name%%-*}" >>"$state/logs/$name.log" 2>&1 &
  pids+=($!)
}

: >"$state/logs/registry.log"
# Health listeners: registry on the base port, bitbucket on the next, brokers after.
health=${PORTICO_RUN_HEALTH_PORT:-8081}
start registry PORTICO_HEALTH_ADDR="127.0.0.1:$health"
start bitbucket PORTICO_HEALTH_ADDR="127.0.0.1:$((health + 1))"
start web
for i in $(seq 1 "${PORTICO_RUN_BROKERS:-2}"); do
  start "broker-$i" PORTICO_HEALTH_ADDR="127.0.0.1:$((health + 1 + i))"
done

# Wait until the web says every service is ready. A process that stops
# meanwhile (a port already in use, a setting it refuses) ends the start
# with the end of its log, rather than a banner over a dead service.
web_addr=${PORTICO_HTTP_ADDR:-0.0.0.0:8080}
probe="http://127.0.0.1:${web_addr##*:}/readyz"
ready=0
deadline=$((SECONDS + 30)) # a readiness answer may itself take a second or two
while ((SECONDS < deadline)); do
  if curl -fsS --max-time 2 -o /dev/null "$probe" 2>/dev/null; then
    ready=1
    break
  fi
  exit_if_one_stopped
  sleep 0.2
done

echo
if ((ready)); then
  echo "  Portico is running: $PORTICO_PUBLIC_URL"
else
  echo "  Portico is starting, not ready yet: $PORTICO_PUBLIC_URL (the logs below say what it waits for)"
fi
echo "  Readiness:          $probe ($(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$probe" 2>/dev/null || echo down))"
ops=${PORTICO_OPS_ADDR:-127.0.0.1:9090}
echo "  Operations:         http://$ops/metrics and http://$ops/readyz (details; not on the public port)"
if [ -n "${PORTICO_SETUP_TOKEN:-}" ]; then
  echo "  Setup token:        the value of PORTICO_SETUP_TOKEN   (open $PORTICO_PUBLIC_URL/admin)"
else
  # The registry's own command: the token from its file, with its expiry, or
  # what to do when Setup Mode is off or the token has expired.
  "$bin/portico-registry" setup-token 2>&1 | sed 's/^/  /' || true
  echo "  (kept in $PORTICO_SETUP_TOKEN_FILE; \`make setup-token\` shows it again)"
fi
if [ -n "$demo_url" ]; then
  echo "  Demo Bitbucket:     $demo_url   (users jdoe, jane.doe@example.com, zoë; password: password)"
  echo "                      use it as the Base URL; create the application link there as user admin"
fi
echo "  Logs:               $state/logs/   (Ctrl-C stops everything)"
echo
# Not ready: what each service has warned of in this run, so far.
if ((!ready)); then
  for i in "${!names[@]}"; do
    log=$state/logs/${names[$i]}.log
    lines=$(tail -c "+$((offsets[i] + 1))" "$log" 2>/dev/null | grep -E 'level=(warn|error)' |
      awk '{ k = $0; sub(/^.* msg=/, "", k) } !seen[k]++' | tail -n 3 || true)
    [ -z "$lines" ] || { echo "  ${names[$i]}:"; printf '%s\n' "$lines" | sed 's/^/    /'; }
  done
  echo
fi

# Stop when any service dies, so a broken start is not mistaken for a running one.
# (wait -n returns when one ends, or at once when one ended before it was
# called; the check then finds which.)
while :; do
  exit_if_one_stopped
  wait -n "${pids[@]}" 2>/dev/null || sleep 0.5
done
