#!/usr/bin/env bash
# Make sure a Docker engine answers: install Debian's docker.io (and
# docker-compose, debootstrap) when missing, start dockerd when it is not
# running. Prints the pid of a dockerd it started on fd 3 when fd 3 is open,
# so the caller can stop it again; prints nothing there otherwise.
#   tests/container/ensure-docker.sh 3>pidfile
set -uo pipefail
say() { echo "[docker] $*"; }
docker info >/dev/null 2>&1 && exit 0
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null ||
    { say "could not install ${need[*]}"; exit 1; }
fi
say "starting dockerd (log: /tmp/dockerd.log)"
dockerd >/tmp/dockerd.log 2>&1 &
pid=$!
{ echo "$pid" >&3; } 2>/dev/null || true
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
say "Docker does not answer; see /tmp/dockerd.log"
exit 1
