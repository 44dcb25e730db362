#!/usr/bin/env bash
# Portico against the peer comparison kit's Express app, in one run:
#   bash tests/bench/peer_compare.sh /path/to/perf-kit [make run variables...]
# The kit's compare.sh starts its PostgreSQL, fake Bitbucket and driver, then
# Portico with `make run` (log level info, two brokers, like an operator's
# first start) and this tree's setup script for the integration. The driver
# comes from one address, so the per-client budgets are lifted; the operations
# and health ports are moved off their defaults so a `make run` elsewhere on
# the machine does not collide (the bus is on Unix sockets in the run folder).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# make bench runs it with no arguments: then only when PORTICO_PERF_KIT names
# the kit (it takes about ten minutes).
kit=${1:-${PORTICO_PERF_KIT:-}}
if [[ -z "$kit" ]]; then
    echo "skipped: give the comparison kit as PORTICO_PERF_KIT=DIR (or: peer_compare.sh KIT_DIR [VAR=value ...])"
    exit 0
fi
shift || true
base=${PERF_PORTICO_PORT_BASE:-27100}
run_dir=$(mktemp -d /tmp/portico-compare.XXXXXX)
. "$root/tests/bench/kit_limits.sh"
vars="PORTICO_RUN_DIR=$run_dir PORTICO_DEMO_BITBUCKET=0 PORTICO_OPS_ADDR=127.0.0.1:$((base + 9)) PORTICO_RUN_HEALTH_PORT=$((base + 10)) \
$KIT_LIMITS $*"
export PORTICO_SETUP_CMD="node $root/tests/bench/peer_setup.mjs"
trap 'rm -rf "$run_dir"' EXIT
"$kit/compare.sh" "env $vars make -C $root --no-print-directory run"
