#!/bin/sh
# portico-registry in a container: the real binary with the database password
# taken from a file. PORTICO_DATABASE_PASSWORD_FILE (a compose or swarm
# secret) is handed to libpq as PGPASSWORD, so PORTICO_DATABASE_URL needs no
# password in it (a password in the URL, or PGPASSWORD, still works).
set -eu
# Unset file variables: a secret the operator provides (/run/secrets/NAME:
# docker/own-secrets.yaml, Swarm) wins over the one compose's init-secrets
# service made on first start (docker/init-secrets.sh).
pick() {
    for f in "/run/secrets/$1" "/var/lib/portico/secrets/$1"; do
        if [ -e "$f" ]; then
            echo "$f"
            return
        fi
    done
}
if [ -z "${PORTICO_SECRET_KEY_FILE:-}" ]; then
    PORTICO_SECRET_KEY_FILE=$(pick secret_key)
    [ -z "$PORTICO_SECRET_KEY_FILE" ] || export PORTICO_SECRET_KEY_FILE
fi
if [ -z "${PORTICO_DATABASE_PASSWORD_FILE:-}" ] && [ -z "${PGPASSWORD:-}" ]; then
    PORTICO_DATABASE_PASSWORD_FILE=$(pick db_password)
fi
if [ "${1:-serve}" = serve ] && [ -n "${PORTICO_SECRET_KEY_FILE:-}" ]; then
    case $PORTICO_SECRET_KEY_FILE in
    /var/lib/portico/secrets/*) echo "portico: secret key: the one made on first start, in the \"secrets\" volume; keep a backup of it with the database's (README: Backup and restore)" >&2 ;;
    *) echo "portico: secret key: $PORTICO_SECRET_KEY_FILE" >&2 ;;
    esac
fi
if [ -n "${PORTICO_DATABASE_PASSWORD_FILE:-}" ] && [ -z "${PGPASSWORD:-}" ]; then
    if [ ! -r "$PORTICO_DATABASE_PASSWORD_FILE" ]; then
        echo "portico: configuration error: PORTICO_DATABASE_PASSWORD_FILE: cannot read $PORTICO_DATABASE_PASSWORD_FILE" >&2
        exit 2
    fi
    PGPASSWORD=$(cat "$PORTICO_DATABASE_PASSWORD_FILE")
    export PGPASSWORD
fi
exec /usr/local/lib/portico/portico-registry "$@"
