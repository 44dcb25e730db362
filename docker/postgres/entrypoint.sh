#!/bin/sh
# Start PostgreSQL; on an empty data directory first make the cluster:
#   superuser "postgres": local socket only (peer), no network login
#   role $POSTGRES_USER (portico) with the password in $POSTGRES_PASSWORD_FILE,
#     owner of database $POSTGRES_DB (portico), the only network login
#   every address, scram-sha-256
# Extra arguments go to postgres (-c name=value ...).
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=portico}"
: "${POSTGRES_DB:=portico}"
: "${POSTGRES_PASSWORD_FILE:=/run/secrets/db_password}"
log() { echo "postgres-entrypoint: $*" >&2; }

if [ "$(id -u)" = 0 ]; then
    log "runs as the postgres user (the image's USER); do not override it with root"
    exit 1
fi

# No secret provided at POSTGRES_PASSWORD_FILE: the one compose's
# init-secrets service made on first start (docker/init-secrets.sh).
generated=/var/lib/portico/secrets/db_password
if [ ! -e "$POSTGRES_PASSWORD_FILE" ] && [ -e "$generated" ]; then
    POSTGRES_PASSWORD_FILE=$generated
fi

# A first start that was stopped half-way (an orchestrator stopping a slow
# container before it was healthy) leaves a cluster without the role or the
# database, which a plain "PG_VERSION exists" test would then start as it is,
# forever. The marker below exists only from initdb until the database is
# made; with it, nothing was ever stored here: start over.
incomplete=$PGDATA/portico-init-incomplete
if [ -e "$incomplete" ]; then
    log "the first start was interrupted before the database was made: initialising again"
    find "$PGDATA" -mindepth 1 -delete
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ ! -r "$POSTGRES_PASSWORD_FILE" ] || [ ! -s "$POSTGRES_PASSWORD_FILE" ]; then
        log "empty data directory and no password: mount one at POSTGRES_PASSWORD_FILE ($POSTGRES_PASSWORD_FILE)"
        exit 1
    fi
    log "initialising a new cluster in $PGDATA"
    # initdb wants the password alone on the first line.
    pw=$(mktemp)
    head -n 1 "$POSTGRES_PASSWORD_FILE" | tr -d '\r\n' >"$pw"
    initdb -D "$PGDATA" --username=postgres --pwfile="$pw" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    : >"$incomplete"
    cat >"$PGDATA/pg_hba.conf" <<HBA
# TYPE  DATABASE  USER      ADDRESS  METHOD
local   all       postgres           peer
local   all       all                scram-sha-256
host    all       postgres  all      reject
host    all       all       all      scram-sha-256
HBA
    cat >>"$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
password_encryption = scram-sha-256
unix_socket_directories = '/var/run/postgresql'
log_line_prefix = '%m [%p] %q%u@%d '
CONF
    # Make the role and the database over a private socket, then stop.
    sock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$sock" -w start >/dev/null
    # The password travels as a file name, never on a command line.
    psql -h "$sock" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -v role="$POSTGRES_USER" -v db="$POSTGRES_DB" -v pwfile="$pw" <<'SQL'
SELECT pg_read_file(:'pwfile') AS pw \gset
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"role";
SQL
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    rm -f "$pw"
    rmdir "$sock"
    rm -f "$incomplete"
    log "cluster ready: database \"$POSTGRES_DB\", role \"$POSTGRES_USER\""
fi
exec postgres -D "$PGDATA" "$@"
