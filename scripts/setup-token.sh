#!/usr/bin/env bash
# make setup-token: the setup token of the Portico that `make run` started,
# again, from another terminal (the registry's own `setup-token` command with
# make run's database and token file). Settings as for make run:
# PORTICO_RUN_DIR, PORTICO_DATABASE_URL, PORTICO_SETUP_TOKEN_FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
state=${PORTICO_RUN_DIR:-$(pwd)/run}
if [ -z "${PORTICO_DATABASE_URL:-}" ]; then
  if [ ! -d "$state/pg" ]; then
    echo "portico: no database of make run in $state/pg: start Portico with make run first" >&2
    exit 1
  fi
  PORTICO_DATABASE_URL=$(bash scripts/pg.sh url "$state/pg")
fi
export PORTICO_DATABASE_URL
export PORTICO_SETUP_TOKEN_FILE=${PORTICO_SETUP_TOKEN_FILE:-$state/setup-token}
exec build/bin/portico-registry setup-token
