#!/usr/bin/env bash
# GET a path from the web's operations listener (PORTICO_OPS_ADDR, port 9090,
# never published) from inside the web container, with bash's /dev/tcp (the
# image has no curl). Prints the status code on the first line, then the body.
#   tests/container/ops-get.sh CONTAINER PATH
set -euo pipefail
# It listens on the container's "bus" address alone (compose.yaml: web.bus),
# on Swarm on every address: the first of the container's that answers.
docker exec "$1" bash -c 'for a in $(hostname -I); do exec 3<>"/dev/tcp/$a/9090" && break; done 2>/dev/null;
  printf "GET %s HTTP/1.0\r\nHost: ops\r\n\r\n" "$1" >&3 && timeout 5 cat <&3' _ "$2" |
  tr -d '\r' | awk 'NR == 1 { print $2; next } body { print } /^$/ { body = 1 }'
