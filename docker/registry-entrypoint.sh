#!/bin/sh
# portico-registry in a container: the real binary with the database password
# taken from a file. PORTICO_DATABASE_PASSWORD_FILE (a compose or swarm
# secret) is handed to libpq as PGPASSWORD, so PORTICO_DATABASE_URL needs no
# password in it (a password in the URL, or PGPASSWORD, still works).
set -eu
if [ -n "${PORTICO_DATABASE_PASSWORD_FILE:-}" ] && [ -z "${PGPASSWORD:-}" ]; then
    if [ ! -r "$PORTICO_DATABASE_PASSWORD_FILE" ]; then
        echo "portico: configuration error: PORTICO_DATABASE_PASSWORD_FILE: cannot read $PORTICO_DATABASE_PASSWORD_FILE" >&2
        exit 2
    fi
    PGPASSWORD=$(cat "$PORTICO_DATABASE_PASSWORD_FILE")
    export PGPASSWORD
fi
exec /usr/local/lib/portico/portico-registry "$@"
