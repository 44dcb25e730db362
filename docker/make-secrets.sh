#!/bin/sh
# Make the two secrets docker/own-secrets.yaml and docker/stack-deploy.sh
# read, once, next to compose.yaml (plain `docker compose up` needs none of
# this: its init-secrets service makes them in a volume on first start):
#   secrets/db_password  PostgreSQL password of the "portico" role (40 letters and digits)
#   secrets/secret_key   32 random bytes, base64: PORTICO_SECRET_KEY_FILE (AES-256-GCM)
# Existing files are kept: the password is baked into the database volume and
# the key decrypts what is stored, so replacing either by accident would lock
# you out (rotate the key with `portico-registry rotate-key` instead).
# The folder is private (0700); the files are 0644 so the containers' own
# users can read their bind-mounted copies (Swarm mounts secrets 0444 anyway).
#   docker/make-secrets.sh [DIR]     (default: secrets/ beside compose.yaml)
set -eu
dir=${1:-$(cd "$(dirname "$0")/.." && pwd)/secrets}
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
[ -f "$dir/.gitignore" ] || printf '# never commit secrets\n*\n' >"$dir/.gitignore"
if [ ! -s "$dir/db_password" ]; then
    head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40 >"$dir/db_password"
    echo "made $dir/db_password"
fi
if [ ! -s "$dir/secret_key" ]; then
    head -c 32 /dev/urandom | base64 >"$dir/secret_key"
    echo "made $dir/secret_key: it encrypts every secret and token Portico stores;"
    echo "  BACK IT UP with the database's backups (a backup without it cannot be decrypted)"
fi
chmod 0644 "$dir/db_password" "$dir/secret_key"
