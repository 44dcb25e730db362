#!/usr/bin/env bash
# pg.sh: a private PostgreSQL cluster for `make run`, tests and benchmarks.
#
#   scripts/pg.sh start DIR [PORT]   initialise DIR if needed, start the cluster and
#                                    print its libpq connection string on stdout
#   scripts/pg.sh stop DIR           stop it (fast shutdown)
#   scripts/pg.sh crash DIR          stop it as a crash would (immediate: the next
#                                    start recovers from the write-ahead log; for tests)
#   scripts/pg.sh url DIR            print the connection string again
#
# The cluster listens only on a Unix socket in DIR (no TCP), trusts local
# connections, and has a superuser and a database both named `portico`:
# DIR is made mode 0700, so only its owner reaches the socket.
# initdb refuses to run as root, so as root the server runs as the `postgres`
# user and DIR is handed to it; as any other user it runs as that user.
set -euo pipefail

PG_BIN=${PG_BIN:-}
if [[ -z "$PG_BIN" ]]; then
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x "$d/pg_ctl" ]] && PG_BIN=$d
    done
fi
if [[ -z "$PG_BIN" || ! -x "$PG_BIN/pg_ctl" ]]; then
    echo "pg.sh: could not find PostgreSQL's pg_ctl (install the postgresql package or set PG_BIN)" >&2
    exit 1
fi

usage() {
    echo "usage: pg.sh start DIR [PORT] | pg.sh stop DIR | pg.sh url DIR" >&2
    exit 2
}

# Run a PostgreSQL program as the user that owns the cluster.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

conninfo() {
    echo "host=$1 port=$2 user=portico dbname=portico"
}

cmd_start() {
    local dir=$1 port=${2:-}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ -z "$port" ]]; then
        port=$(cat "$dir/port" 2>/dev/null || echo 5432)
    fi
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        echo "pg.sh: invalid port \"$port\"" >&2
        exit 2
    fi
    # The cluster trusts every local connection (user portico, a
    # superuser): only the folder's owner may reach its socket, whatever
    # the umask made the folder.
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres "$dir"
        chmod 700 "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            echo "pg.sh: the postgres user cannot write to \"$dir\" (a parent folder is closed to it); use a folder under /tmp" >&2
            exit 1
        fi
    else
        chmod 700 "$dir"
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        as_owner "$PG_BIN/initdb" -D "$dir/data" -A trust -U portico -E UTF8 --no-sync \
            --locale=C >"$dir/initdb.log" 2>&1 || {
            echo "pg.sh: initdb failed; see $dir/initdb.log" >&2
            exit 1
        }
    fi
    echo "$port" | as_owner tee "$dir/port" >/dev/null
    if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 30 -l "$dir/log" \
            -o "-k $dir -p $port -c listen_addresses=''" start >/dev/null || {
            echo "pg.sh: the server did not start; see $dir/log" >&2
            exit 1
        }
    fi
    if ! as_owner "$PG_BIN/psql" -h "$dir" -p "$port" -U portico -d postgres -XtAq \
        -c "SELECT 1 FROM pg_database WHERE datname = 'portico'" | grep -q 1; then
        as_owner "$PG_BIN/createdb" -h "$dir" -p "$port" -U portico portico
    fi
    conninfo "$dir" "$port"
}

cmd_stop() {
    local dir=$1 mode=${2:-fast}
    [[ -d "$dir/data" ]] || exit 0
    if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 30 -m "$mode" stop >/dev/null
    fi
}

cmd_url() {
    local dir
    dir=$(cd "$1" && pwd)
    conninfo "$dir" "$(cat "$dir/port" 2>/dev/null || echo 5432)"
}

[[ $# -ge 2 ]] || usage
case "$1" in
start) cmd_start "$2" "${3:-}" ;;
stop) cmd_stop "$2" ;;
crash) cmd_stop "$2" immediate ;;
url) cmd_url "$2" ;;
*) usage ;;
esac
