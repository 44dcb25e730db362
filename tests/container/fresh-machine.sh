#!/usr/bin/env bash
# The README's promise, checked as a new user meets it: a fresh debian:bookworm
# container, a clone of this commit, only `make` installed, and then the
# README's test command as the very first command. Nothing from this machine's
# build, packages or node_modules reaches the container.
#   tests/container/fresh-machine.sh [COMMIT]     (default HEAD)
# FRESH_COMMAND overrides the command (default: make test). The container's
# whole output is kept in tests/artifacts/container/fresh-machine.log.
# Exits 0 when the command passed; prints "fresh-machine: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
commit=${1:-HEAD}
command=${FRESH_COMMAND:-make test}
image=debian:bookworm
artifacts=$root/tests/artifacts/container
mkdir -p "$artifacts"
log=$artifacts/fresh-machine.log
say() { echo "[fresh-machine] $*"; }
result() { echo "fresh-machine: $1 passed, $2 failed"; }

bash tests/container/ensure-docker.sh || { result 0 1; exit 1; }
bash tests/container/make-base-image.sh "$image" || { result 0 1; exit 1; }

work=$(mktemp -d /tmp/portico-fresh.XXXXXX)
name=portico-fresh-$$
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A clone holds only what is committed: no build/, no node_modules, no run/.
git clone -q --no-local --no-checkout "$root" "$work/portico" &&
  git -C "$work/portico" checkout -q --detach "$commit" || { say "cannot clone $commit"; result 0 1; exit 1; }
say "commit $(git -C "$work/portico" rev-parse --short HEAD), image $image, command: $command"

# Chromium wants more shared memory than Docker's 64 MB default. The
# container is on Docker's default bridge: it reaches Debian's archive and
# the npm registry, as a fresh machine would. A machine whose network needs
# an extra certificate authority for TLS (Node's NODE_EXTRA_CA_CERTS or npm's
# cafile) has it from its own provisioning, not from this project: the
# container gets the same file, read-only, and nothing else of the host.
ca_args=()
ca=${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null || true)}
if [ -n "$ca" ] && [ "$ca" != null ] && [ -s "$ca" ]; then
  ca_args=(-v "$ca:/usr/local/share/machine-ca/ca.crt:ro" -e NODE_EXTRA_CA_CERTS=/usr/local/share/machine-ca/ca.crt)
  say "the machine's extra CA file for Node goes in as NODE_EXTRA_CA_CERTS"
fi
t=$(date +%s)
timeout 2400 docker run --name "$name" --shm-size=1g -e CI=true "${ca_args[@]}" -e FRESH_COMMAND="$command" \
  -v "$work/portico:/src/portico" -w /src/portico "$image" \
  bash -c 'set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends make >/dev/null
    echo "[fresh-machine] only make installed; running: $FRESH_COMMAND"
    exec bash -c "$FRESH_COMMAND"' >"$log" 2>&1
rc=$?
say "finished in $(($(date +%s) - t)) s with exit $rc (log: tests/artifacts/container/fresh-machine.log)"
if ((rc)); then
  tail -40 "$log" | sed 's/^/  | /'
  result 0 1
  exit 1
fi
grep -E '^(suites|fresh-machine):|passed, [0-9]+ failed' "$log" | tail -3 | sed 's/^/  | /'
result 1 0
