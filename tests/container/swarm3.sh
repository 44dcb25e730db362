#!/usr/bin/env bash
# Portico on a three-node Docker Swarm, on this one machine: three Docker
# engines in containers (Docker-in-Docker) on a network of this
# test's own, images from a local registry on that network, the stack from
# compose.yaml through docker/stack-deploy.sh with two instances of every
# Portico service (at most one per node) and PostgreSQL pinned to node 1,
# HAProxy in front of the nodes as an operator's load balancer would be,
# the bus on a range of its own (PORTICO_BUS_SUBNET; every bus port must
# listen on its task's address in it alone). Then
# tests/container/swarm3-drive.mjs logs in without pause while it stops a
# whole node, drains one and brings it back, rolls every service, and
# rotates the registry's bus key with docker/bus-rotate.sh.
#
#   tests/container/swarm3.sh          (as root; run.sh calls it, CTEST_SWARM3=1)
#
# What it makes, all named after S3_PREFIX (portico-s3), all removed at the
# end, also on failure or Ctrl-C: the network S3_PREFIX-net (S3_SUBNET,
# 192.168.213.0/24), the containers S3_PREFIX-registry, -node1..3, -lb and
# their volumes, the work folder in /tmp. Images stay as build cache:
# S3_PREFIX/node (debian:bookworm-slim + docker.io, docker-registry, haproxy)
# and Portico's images tagged S3_PREFIX/<service> (their own tags, so another
# checkout building portico/* at the same time cannot swap them).
# The host's dockerd is used (started when it is not running, and then
# stopped again), never reconfigured.
#
# Why HAProxy and not Swarm's routing mesh: stack-deploy.sh runs every service
# with endpoint_mode dnsrr (no IPVS virtual IPs, which some kernels lack, this
# test machine's among them), so the web's port is published in mode host, on
# the nodes that run a web. Whatever sends browsers to Portico must then
# health-check the nodes (/readyz) and skip the ones that do not answer.
#
# Environment: S3_PREFIX, S3_SUBNET, S3_BUS_SUBNET (10.231.13.0/24), S3_BUILD
# (1: build Portico's images first; run.sh passes 0 after building them),
# S3_KEEP=1 leaves it all running, S3_ONLY=rotation skips the node loss,
# drain and rolling update (when working on the rotation).
# Output: figures and one closing line "swarm3: N passed, N failed"; logs in
# tests/artifacts/swarm3.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
for v in $(compgen -e | grep '^PORTICO_' || true); do unset "$v"; done
unset DOCKER_HOST

prefix=${S3_PREFIX:-portico-s3}
subnet=${S3_SUBNET:-192.168.213.0/24}
net=$prefix-net
stack=$prefix
# Another S3_PREFIX (and S3_SUBNET) runs a second cluster beside this one,
# with its logs in tests/artifacts/<prefix>.
artifacts=$root/tests/artifacts/swarm3
[ "$prefix" = portico-s3 ] || artifacts=$root/tests/artifacts/$prefix
base=${subnet%.*/*}               # 192.168.213
registry_ip=$base.2 lb_ip=$base.3 # nodes: .11 .12 .13
registry=$registry_ip:5000
images=(web registry broker bitbucket demo-bitbucket postgres)
rm -rf "$artifacts"
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/portico-s3.XXXXXX)
started_dockerd=""
tag=swarm3
. tests/container/lib.sh
node_sock() { echo "unix://$work/node$1/docker.sock"; }
on() { # on N docker ARGS...: the engine of node N, every call bounded
  local n=$1
  shift
  DOCKER_HOST=$(node_sock "$n") timeout 120 "$@"
}


# Everything of this test, by name: what an interrupted earlier run left too.
remove_all() {
  local i
  for i in 1 2 3; do
    [ -S "$work/node$i/docker.sock" ] && docker logs "$prefix-node$i" >"$artifacts/node$i-dockerd.log" 2>&1
  done
  docker logs "$prefix-lb" >"$artifacts/haproxy.log" 2>&1 || true
  docker rm -f -v "$prefix-lb" "$prefix-node1" "$prefix-node2" "$prefix-node3" "$prefix-registry" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
}
cleanup() {
  local rc=$?
  if [ "${S3_KEEP:-0}" = 1 ]; then
    say "S3_KEEP=1: leaving it running (work folder $work; docker -H $(node_sock 1) node ls)"
  else
    remove_all
    local left
    left=$( (docker ps -aq --filter "name=^$prefix-"
      docker network ls -q --filter "name=^$net\$") | wc -l)
    say "after cleanup: $left containers or networks named $prefix-* left"
    rm -rf "$work"
    if [ -n "$started_dockerd" ]; then
      kill "$started_dockerd" 2>/dev/null
      for _ in $(seq 1 30); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
  return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Docker, base image, images ------------------------------------------------
t=$(now)
bash tests/container/ensure-docker.sh 3>"$work/dockerd.pid" || { echo "swarm3: 0 passed, 1 failed"; exit 1; }
started_dockerd=$(cat "$work/dockerd.pid")
remove_all
check "base image debian:bookworm-slim" bash tests/container/make-base-image.sh
if [ "${S3_BUILD:-1}" = 1 ]; then
  check "Portico's images build ($prefix/*)" bash tests/container/build-images.sh "$prefix/" "$artifacts"
else # run.sh built portico/*: the same images under this test's names
  tag_all() { local i; for i in "${images[@]}"; do docker tag "portico/$i:latest" "$prefix/$i:latest" || return 1; done; }
  check "Portico's images tagged $prefix/*" tag_all
fi
build_node() {
  timeout 900 docker build -q --force-rm -t "$prefix/node:latest" tests/container/swarm3 >"$artifacts/build-node.log" 2>&1 ||
    { tail -20 "$artifacts/build-node.log"; return 1; }
}
check "node image (base + docker.io, docker-registry, haproxy)" build_node
timings+=("images: $(since "$t")s")
if ((fail)); then summary swarm3; exit 1; fi

# ---- the network, the registry, three engines ----------------------------------
t=$(now)
# What a Docker engine in a container needs: what --privileged gives, less
# any capability this machine's root lacks (--privileged, asking for all of
# them, then fails); node-entrypoint.sh makes /sys and the cgroups writable.
node_opts=(--cgroupns private --cap-add ALL --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm')
lacking=$(capsh --decode="$(printf '0x%x' $((~16#$(awk '/^CapBnd/ { print $2 }' /proc/self/status) & 0x1ffffffffff)))" 2>/dev/null |
  sed 's/.*=//' | tr ',' '\n' | sed -n 's/^cap_//p')
for c in $lacking; do node_opts+=(--cap-drop "${c^^}"); done
engines() {
  [ -z "$lacking" ] || say "this machine's root lacks: $lacking (left out of the nodes' capabilities)"
  docker network create --driver bridge --subnet "$subnet" "$net" >/dev/null || return 1
  mkdir -p "$work/registry" "$work/shared"
  cat >"$work/registry/config.yml" <<YML
version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
YML
  docker run -d --name "$prefix-registry" --network "$net" --ip "$registry_ip" \
    -v "$work/registry/config.yml:/etc/docker/registry/config.yml:ro" -v /var/lib/docker-registry \
    --entrypoint docker-registry "$prefix/node:latest" serve /etc/docker/registry/config.yml >/dev/null || return 1
  local i
  for i in 1 2 3; do
    mkdir -p "$work/node$i"
    # The work folder's shared/ at the same path inside: stack-deploy.sh's
    # `docker run -v $secrets/bus:/keys` then means the same folder on node 1.
    docker run -d "${node_opts[@]}" --name "$prefix-node$i" --hostname "$prefix-node$i" \
      --network "$net" --ip "$base.1$i" -v "$work/node$i:/run/node" -v "$work/shared:$work/shared" \
      "$prefix/node:latest" "$registry" >/dev/null || return 1
  done
  for i in 1 2 3; do
    for _ in $(seq 1 60); do on "$i" docker info >/dev/null 2>&1 && break; sleep 1; done
    on "$i" docker info >/dev/null 2>&1 || { say "node $i's engine does not answer"; docker logs --tail 20 "$prefix-node$i"; return 1; }
  done
  say "engines: $(for i in 1 2 3; do echo -n "node$i $(on "$i" docker version -f '{{.Server.Version}}') "; done)"
}
check "three Docker engines in containers on $net ($subnet), a registry at $registry" engines
timings+=("engines up: $(since "$t")s")
if ((fail)); then summary swarm3; exit 1; fi

# ---- images through the registry -------------------------------------------------
# Node 1 loads what the host built and pushes it to the registry on the test
# network; nodes 2 and 3 pull from there (as a node of a real cluster would).
t=$(now)
push_pull() {
  local i n
  docker save $(for i in "${images[@]}"; do echo "$prefix/$i:latest"; done) | DOCKER_HOST=$(node_sock 1) timeout 300 docker load -q >/dev/null || return 1
  for i in "${images[@]}"; do
    on 1 docker tag "$prefix/$i:latest" "$registry/portico/$i:latest" || return 1
    on 1 docker push -q "$registry/portico/$i:latest" >>"$artifacts/push.log" 2>&1 || { tail -5 "$artifacts/push.log"; return 1; }
  done
  for n in 2 3; do
    for i in "${images[@]}"; do
      on "$n" docker pull -q "$registry/portico/$i:latest" >>"$artifacts/pull.log" 2>&1 &
    done
  done
  wait
  for n in 2 3; do
    for i in "${images[@]}"; do
      on "$n" docker image inspect "$registry/portico/$i:latest" >/dev/null 2>&1 || { say "node $n has no $i"; tail -5 "$artifacts/pull.log"; return 1; }
    done
  done
}
check "images pushed to the registry by node 1, pulled by nodes 2 and 3" push_pull
timings+=("registry push/pull: $(since "$t")s")

# ---- the swarm --------------------------------------------------------------------
t=$(now)
swarm() {
  on 1 docker swarm init --advertise-addr "$base.11" >/dev/null || return 1
  local token i
  token=$(on 1 docker swarm join-token -q worker) || return 1
  for i in 2 3; do
    on "$i" docker swarm join --advertise-addr "$base.1$i" --token "$token" "$base.11:2377" >/dev/null || return 1
  done
  # PostgreSQL (its volume is local to a node) and the demo Bitbucket (stands
  # for the company's Bitbucket, outside the cluster) on node 1. Portico goes
  # first on nodes 2 and 3, one of each service on each, so which node holds
  # what is known; node 1 is then allowed too, as the spare a lost node's
  # instances move to.
  on 1 docker node update --label-add portico.db=true "$prefix-node1" >/dev/null || return 1
  for i in 2 3; do on 1 docker node update --label-add portico.app=true "$prefix-node$i" >/dev/null || return 1; done
  for _ in $(seq 1 30); do
    [ "$(on 1 docker node ls --format '{{.Status}}' | grep -c Ready)" = 3 ] && break
    sleep 1
  done
  on 1 docker node ls
  [ "$(on 1 docker node ls --format '{{.Status}}' | grep -c Ready)" = 3 ]
}
check "swarm: node 1 manager, nodes 2 and 3 joined, all Ready" swarm
timings+=("swarm: $(since "$t")s")
if ((fail)); then summary swarm3; exit 1; fi

# ---- the stack ------------------------------------------------------------------------
t=$(now)
# $work/stack.sh SCRIPT ARGS: docker/SCRIPT (stack-deploy.sh, bus-rotate.sh)
# against node 1 with this test's settings; the drive rotates a bus key
# with it. The bus network gets a range of its own (S3_BUS_SUBNET), and
# every bus port binds its task's address in it (PORTICO_BUS_SUBNET).
bus_subnet=${S3_BUS_SUBNET:-10.231.13.0/24}
{
  echo "#!/bin/sh"
  echo "export DOCKER_HOST=$(node_sock 1) PORTICO_IMAGE_PREFIX=$registry/portico/ PORTICO_SECRETS_DIR=$work/shared/secrets"
  echo "export PORTICO_PUBLISH=8080 PORTICO_PUBLIC_URL=http://$lb_ip:8080 PORTICO_DEMO_PUBLISH=7990"
  echo "export PORTICO_STACK_PROFILES=demo PORTICO_DEMO_AUTO_APPROVE=jdoe PORTICO_RESOLVE_IMAGE=always"
  echo "export PORTICO_LOGIN_RATE_PER_MINUTE=100000 PORTICO_CALLBACK_RATE_PER_MINUTE=100000"
  # The load balancer is where requests come from; it names the client in
  # X-Forwarded-For (the per-client limits are per browser, not per LB).
  echo "export PORTICO_TRUSTED_PROXIES=$lb_ip PORTICO_MAX_PER_NODE=1 PORTICO_BUS_SUBNET=$bus_subnet"
  for s in WEB REGISTRY BROKER BITBUCKET; do
    echo "export PORTICO_REPLICAS_$s=2 PORTICO_PLACEMENT_$s=node.labels.portico.app==true"
  done
  echo "export PORTICO_PLACEMENT_POSTGRES=node.labels.portico.db==true PORTICO_PLACEMENT_DEMO_BITBUCKET=node.labels.portico.db==true"
  echo "script=\$1; shift"
  echo "exec sh $root/docker/\$script \"\$@\""
} >"$work/stack.sh"
run_deploy() {
  PORTICO_STACK_PRINT=1 sh "$work/stack.sh" stack-deploy.sh "$stack" >"$artifacts/stack.yaml" 2>"$artifacts/deploy.log"
  timeout 300 sh "$work/stack.sh" stack-deploy.sh "$stack" >>"$artifacts/deploy.log" 2>&1 || { tail -20 "$artifacts/deploy.log"; return 1; }
}
check "docker/stack-deploy.sh on node 1: 2 x web, registry, broker, bitbucket; postgres and the demo Bitbucket on node 1" \
  run_deploy
converged() {
  local line
  while read -r line; do
    set -- $line
    [ "${2%%/*}" = "${2##*/}" ] || return 1
  done < <(on 1 docker service ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Name}} {{.Replicas}}')
  local i
  for i in 1 2 3; do
    [ -z "$(on "$i" docker ps -q --filter "label=com.docker.stack.namespace=$stack" --filter health=starting)" ] &&
      [ -z "$(on "$i" docker ps -q --filter "label=com.docker.stack.namespace=$stack" --filter health=unhealthy)" ] || return 1
  done
}
wait_converged() {
  for _ in $(seq 1 180); do converged && return 0; sleep 1; done
  on 1 docker service ls
  on 1 docker stack ps --no-trunc "$stack" | head -30
  return 1
}
layout() { # service:node pairs of the running tasks
  on 1 docker stack ps "$stack" -f desired-state=running --format '{{.Name}} {{.Node}} {{.CurrentState}}' | sed 's/\.[0-9]* / /' | sort
}
spread() {
  layout | tee "$artifacts/layout-initial.txt"
  local s
  for s in web registry broker bitbucket; do
    [ "$(layout | grep -c "^${stack}_$s $prefix-node[23] Running")" = 2 ] || { say "$s is not on nodes 2 and 3"; return 1; }
  done
  layout | grep -q "^${stack}_postgres $prefix-node1 Running" || return 1
  # From now on node 1 may take the instances of a lost node.
  on 1 docker node update --label-add portico.app=true "$prefix-node1" >/dev/null
}
# PORTICO_BUS_SUBNET: each bus port listens on its task's address in the
# bus network's range and nowhere else (not on edge, db or egress), read
# from the kernel's table of listening sockets in every instance.
bus_binds_in_subnet() {
  local svc port n id out bad=0 seen=0
  for svc in registry:5551 bitbucket:5552 web:5553; do
    port=${svc#*:} svc=${svc%:*}
    for n in 1 2 3; do
      for id in $(on "$n" docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_$svc"); do
        out=$(on "$n" docker exec "$id" cat /proc/net/tcp /proc/net/tcp6 | python3 -c '
import ipaddress, sys
port, net = int(sys.argv[1]), ipaddress.ip_network(sys.argv[2])
for line in sys.stdin:
    f = line.split()
    if len(f) < 4 or f[3] != "0A" or ":" not in f[1]:
        continue
    addr, p = f[1].split(":")
    if int(p, 16) != port:
        continue
    raw = bytes.fromhex(addr)
    ip = ipaddress.ip_address(raw[::-1] if len(raw) == 4 else b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    print("%s:%d %s" % (ip, port, "in" if ip.version == 4 and ip in net else "OUTSIDE"))
' "$port" "$bus_subnet")
        say "$svc on node $n listens on: $(echo $out)"
        [ -n "$out" ] || bad=1
        case $out in *OUTSIDE*) bad=1 ;; esac
        seen=$((seen + 1))
      done
    done
  done
  [ "$seen" = 6 ] && [ "$bad" = 0 ]
}
((fail)) || check "every service converged and healthy" wait_converged
((fail)) || check "bus ports listen only on the bus network's address ($bus_subnet) in every instance" bus_binds_in_subnet
((fail)) || check "spread: one of each Portico service on node 2 and on node 3, postgres on node 1" spread
timings+=("deploy until converged: $(since "$t")s")

# ---- the load balancer ----------------------------------------------------------------
lb() {
  cat >"$work/haproxy.cfg" <<CFG
# An operator's load balancer in front of the Swarm nodes: health-checks each
# node's published web port (/readyz) and retries a failed connection on
# another node (only connections: a request is never sent twice).
global
  log stdout format raw local0
  maxconn 1024
defaults
  mode http
  log global
  option httplog
  option forwardfor
  timeout connect 1s
  timeout client 30s
  timeout server 20s
  # /readyz asks a registry and a bitbucket instance (1 s each at most): a
  # check must be allowed that long, or a loaded machine takes every web out.
  timeout check 3s
  retries 3
  option redispatch 1
frontend portico
  bind :8080
  default_backend webs
backend webs
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 1s fall 2 rise 2
  server node1 $base.11:8080 check
  server node2 $base.12:8080 check
  server node3 $base.13:8080 check
CFG
  docker run -d --name "$prefix-lb" --network "$net" --ip "$lb_ip" -v "$work/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro" \
    --entrypoint haproxy "$prefix/node:latest" -f /etc/haproxy/haproxy.cfg >/dev/null || return 1
  for _ in $(seq 1 60); do
    curl -fsS -m 2 -o /dev/null "http://$lb_ip:8080/readyz" 2>/dev/null && return 0
    sleep 0.5
  done
  return 1
}
((fail)) || check "HAProxy in front of the three nodes answers /readyz" lb

# ---- the drive ---------------------------------------------------------------------------
if ((fail == 0)); then
  t=$(now)
  # bus_probe (built here, run in a container of the web image in a web
  # task's network) checks that the old registry key gets no answer.
  mkdir -p "$work/shared/probe"
  make -s -C "$root" build/tests/bus_probe >/dev/null && cp "$root/build/tests/bus_probe" "$work/shared/probe/"
  S3_PREFIX=$prefix S3_STACK=$stack S3_WORK=$work S3_IMAGE=$registry/portico/web:latest S3_WEB=http://$lb_ip:8080 S3_DEMO_HOST=http://$base.11:7990 \
    S3_ARTIFACTS=$artifacts timeout 1500 node tests/container/swarm3-drive.mjs 2>&1 | tee "$artifacts/drive.log"
  line=$(grep -E '^drive: [0-9]+ passed, [0-9]+ failed' "$artifacts/drive.log" | tail -1)
  if [ -n "$line" ]; then
    set -- $line
    pass=$((pass + $2))
    fail=$((fail + $4))
    (($4)) && failed+=("drive: $4 step(s)")
  else
    fail=$((fail + 1))
    failed+=("drive (crashed or timed out)")
  fi
  timings+=("drive: $(since "$t")s")
fi

# Logs for a later look (30 s each: `service logs` waits on the tasks of a
# node that was lost, until its timeout).
for s in web registry broker bitbucket postgres demo-bitbucket; do
  DOCKER_HOST=$(node_sock 1) timeout 30 docker service logs --raw --timestamps "${stack}_$s" >"$artifacts/$s.log" 2>&1 || true
done
on 1 docker stack ps --no-trunc "$stack" >"$artifacts/stack-ps.txt" 2>&1 || true
summary swarm3
