#!/bin/bash
# The demo Bitbucket (tests/emulator) in a container.
#   demo-bitbucket              serve on DEMO_BITBUCKET_LISTEN under DEMO_BITBUCKET_CONTEXT
#   demo-bitbucket healthcheck  exit 0 when it answers (no curl in the image: bash's /dev/tcp)
#   demo-bitbucket ARGS...      bitbucket-emulator with those arguments
set -euo pipefail
listen=${DEMO_BITBUCKET_LISTEN:-0.0.0.0:7990}
context=${DEMO_BITBUCKET_CONTEXT:-/bitbucket}
if [ "${1:-}" = healthcheck ]; then
    exec 3<>"/dev/tcp/127.0.0.1/${listen##*:}"
    printf 'GET %s/rest/api/1.0/application-properties HTTP/1.0\r\nHost: localhost\r\n\r\n' "$context" >&3
    IFS=' ' read -r -t 8 _ status _ <&3
    [ "$status" = 200 ]
    exit
fi
args=(--listen "$listen" --context "$context" --version "${DEMO_BITBUCKET_VERSION:-8.9.0}")
if [ -n "${DEMO_BITBUCKET_AUTO_APPROVE:-}" ]; then
    args+=(--auto-approve "$DEMO_BITBUCKET_AUTO_APPROVE")
fi
# Application links survive a restart (the emulator's --state file).
if [ -n "${DEMO_BITBUCKET_STATE:-}" ]; then
    args+=(--state "$DEMO_BITBUCKET_STATE")
fi
exec /usr/local/lib/portico/bitbucket-emulator "${args[@]}" "$@"
