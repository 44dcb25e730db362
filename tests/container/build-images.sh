#!/usr/bin/env bash
# Build Portico's images (docker/Dockerfile's targets, docker/postgres) with
# the host's Docker engine, tagged PREFIX<name>:latest, one log per image in
# ARTIFACTS. The shared build stage first, so each target after it is a cache
# hit. Used by run.sh (prefix portico/) and swarm3.sh (its own prefix, so a
# parallel build of another checkout cannot swap its images).
#   tests/container/build-images.sh PREFIX ARTIFACTS
set -uo pipefail
cd "$(dirname "$0")/../.."
prefix=$1 artifacts=$2
mkdir -p "$artifacts"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
for target in build registry bitbucket broker web demo-bitbucket; do
  t=$(now)
  docker build -q --force-rm -f docker/Dockerfile --target "$target" -t "${prefix}$target:latest" . \
    >"$artifacts/build-$target.log" 2>&1 || { tail -30 "$artifacts/build-$target.log"; exit 1; }
  echo "[container] built ${prefix}$target in $(since "$t")s"
done
t=$(now)
docker build -q --force-rm -t "${prefix}postgres:latest" docker/postgres >"$artifacts/build-postgres.log" 2>&1 ||
  { tail -30 "$artifacts/build-postgres.log"; exit 1; }
echo "[container] built ${prefix}postgres in $(since "$t")s"
docker rmi "${prefix}build:latest" >/dev/null 2>&1 || true # the stage stays cached by id
