#!/usr/bin/env bash
# Builds the emulator and runs its Node test suite (node >= 20).
#   tests/emulator/test_emulator.sh            from anywhere
#   BITBUCKET_EMULATOR=/path/bin ...           test another build
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${BITBUCKET_EMULATOR:-}" ]]; then
	make -s -C "$here"
	export BITBUCKET_EMULATOR="$here/bitbucket-emulator"
fi
exec node --test "$here/"
