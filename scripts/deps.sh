#!/usr/bin/env bash
# Install what building, testing and `make run` need on Debian 12, when it is
# missing. Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(
  build-essential pkg-config python3
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler
  libcurl4-openssl-dev libpq-dev libcivetweb-dev libssl-dev libjansson-dev libyajl-dev
  postgresql libcmocka-dev
  clang libfuzzer-14-dev libclang-rt-14-dev
  chromium wrk curl ca-certificates faketime
)
# Node.js may come from elsewhere than Debian (with its own npm): take it
# from Debian only when there is none.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "deps: run as root: apt-get install -y ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Browser tests drive Debian's Chromium with playwright-core (never a
# downloaded browser), at the exact versions of tests/package-lock.json
# (playwright-core is pinned to the last release that runs on Debian 12's
# Node 18). Installed again whenever the lock file changes.
if [ -f tests/package-lock.json ]; then
  want=$(sha256sum tests/package-lock.json | cut -d' ' -f1)
  if [ "$(cat tests/node_modules/.portico-lock 2>/dev/null)" != "$want" ]; then
    echo "deps: installing the test's npm packages"
    (cd tests && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$want" >tests/node_modules/.portico-lock
  fi
fi
