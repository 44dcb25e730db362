#!/bin/sh
# Make bus key pairs in a folder with the registry image's `bus-keygen`
# (no network, as the caller's user), for docker/stack-deploy.sh and
# docker/bus-rotate.sh:  docker/bus-keygen.sh DIR NAME...
# NAME is a service (web, registry, broker, bitbucket) or service.suffix
# (registry.next): NAME.cert and NAME.cert_secret (0600); a pair that
# exists is kept.
set -eu
dir=$1
shift
for name in "$@"; do
    [ -s "$dir/$name.cert_secret" ] && continue
    docker run --rm --network none --user "$(id -u):$(id -g)" -v "$dir:/keys" \
        -e PORTICO_BUS_KEYS_DIR=/keys --entrypoint /usr/local/lib/portico/portico-registry \
        "${PORTICO_IMAGE_PREFIX:-portico/}registry:${PORTICO_TAG:-latest}" bus-keygen "$name" >/dev/null
    echo "bus-keygen: made the bus key pair $name in $dir" >&2
done
