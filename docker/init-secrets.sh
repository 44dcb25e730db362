#!/bin/sh
# portico-init-secrets: the one-shot "init-secrets" service of compose.yaml.
# On the first `docker compose up` it makes the secrets nobody provided, in
# the named volume "secrets" (mounted here at /var/lib/portico/secrets):
#   db_password  PostgreSQL password of the "portico" role (40 letters and digits)
#                mode 0440: the registry (uid 10001) and postgres (group 10001)
#   secret_key   32 random bytes, base64: the AES-256-GCM key of every stored
#                secret and token; mode 0400, the registry alone
# and the bus's CURVE key pairs, one volume per service (bus-web, bus-registry,
# bus-broker, bus-bitbucket, mounted here at /var/lib/portico/bus-NAME):
#   NAME.cert_secret  that service's key pair, 0600, in its own volume only
#   *.cert            every service's public key, in every service's volume
# A secret that already exists is never replaced: the password is baked into
# the database and the key decrypts it. A secret the operator provides as
# /run/secrets/NAME (docker/own-secrets.yaml, or Swarm) wins, and nothing is
# made for it. Runs as the image's user (uid 10001), with no network.
set -eu
dir=${PORTICO_GENERATED_SECRETS:-/var/lib/portico/secrets}
log() { echo "portico-init-secrets: $*" >&2; }

if [ ! -d "$dir" ] || [ ! -w "$dir" ]; then
    log "cannot write $dir: mount the \"secrets\" volume there (see compose.yaml)"
    exit 1
fi
umask 077

# make NAME MODE: write a new random value atomically (a crash leaves no half
# file), unless one is there already.
make_secret() {
    name=$1 mode=$2
    if [ -s "/run/secrets/$name" ]; then
        log "$name: using the one provided as /run/secrets/$name"
        return 0
    fi
    if [ -s "$dir/$name" ]; then
        log "$name: kept (made on first start; never replaced)"
        return 0
    fi
    tmp=$(mktemp "$dir/.$name.XXXXXX")
    case $name in
    db_password) head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$tmp" ;;
    *) head -c 32 /dev/urandom | base64 >"$tmp" ;;
    esac
    chmod "$mode" "$tmp"
    mv "$tmp" "$dir/$name"
    made="$made $name"
}

made=""
make_secret db_password 0440
make_secret secret_key 0400

# The bus: each service's key pair in its own volume, then every public key
# into every volume (a server admits only the callers its methods declare).
bus_services="web registry broker bitbucket"
for svc in $bus_services; do
    d=/var/lib/portico/bus-$svc
    if [ ! -d "$d" ] || [ ! -w "$d" ]; then
        log "cannot write $d: mount the \"bus-$svc\" volume there (see compose.yaml)"
        exit 1
    fi
    if [ -s "$d/$svc.cert_secret" ]; then
        continue
    fi
    PORTICO_BUS_KEYS_DIR=$d /usr/local/lib/portico/portico-registry bus-keygen "$svc" >/dev/null
    made="$made bus:$svc"
done
for svc in $bus_services; do
    for peer in $bus_services; do
        [ "$svc" = "$peer" ] && continue
        src=/var/lib/portico/bus-$peer/$peer.cert
        dst=/var/lib/portico/bus-$svc/$peer.cert
        if ! cmp -s "$src" "$dst" 2>/dev/null; then
            tmp=$(mktemp "/var/lib/portico/bus-$svc/.$peer.XXXXXX")
            cat "$src" >"$tmp"
            chmod 0444 "$tmp"
            mv "$tmp" "$dst"
        fi
    done
done
rm -f "$dir"/.db_password.* "$dir"/.secret_key.* 2>/dev/null || true

case $made in
*secret_key*)
    log "made a new secret key on this first start."
    log "  It encrypts every client secret, private key and Bitbucket token Portico stores."
    log "  It lives in the docker volume \"secrets\" of this project, not in the database."
    log "  BACK IT UP with your database backups: a backup without it cannot be decrypted,"
    log "  and \`docker compose down -v\` deletes it together with the database. Copy it out with"
    log "    docker compose run --rm --no-deps --entrypoint cat init-secrets $dir/secret_key > portico-secret_key"
    ;;
esac
case $made in
*bus:*) log "made the bus's CURVE key pairs:$(echo "$made" | tr ' ' '\n' | sed -n 's/^bus:/ /p' | tr -d '\n') (volumes bus-*; lost keys are simply made again)" ;;
esac
case $made in
*db_password*) log "made a new database password (volume \"secrets\", $dir/db_password)" ;;
esac
exit 0
