#!/bin/sh
# Deploy compose.yaml on Docker Swarm:
#   docker/stack-deploy.sh [STACK]            (default stack name: portico)
#   PORTICO_STACK_PROFILES=demo docker/stack-deploy.sh   also the demo Bitbucket
#
# `docker stack deploy` reads the older "version 3" file format: it refuses
# `depends_on` with conditions and `profiles`, wants a `version`, and would
# ignore `build:` and `restart:` anyway. This script writes a copy of
# compose.yaml without those (profile services kept only when named in
# PORTICO_STACK_PROFILES) and hands it to `docker stack deploy`. ${VARIABLES}
# are left for `docker stack deploy` to fill in, as with compose.
# Swarm has no start order: the registry retries the database, and ZeroMQ
# reconnects on its own, so the services settle in any order.
# Build (or pull) the images first; on several nodes they must come from a
# registry: set PORTICO_IMAGE_PREFIX (e.g. registry.example.com/portico/).
# PORTICO_STACK_ENCRYPT=1 encrypts the overlay networks (for several nodes).
# Like compose, reads .env next to compose.yaml (the environment wins).
# Needs python3 with PyYAML (Debian: python3-yaml, also pulled in by docker-compose).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
stack=${1:-portico}
if [ -f "$here/.env" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in '' | '#'*) continue ;; esac
        key=${line%%=*}
        val=${line#*=}
        case $key in '' | [0-9]* | *[!A-Za-z0-9_]*) continue ;; esac
        if eval "[ -z \"\${$key+set}\" ]"; then export "$key=$val"; fi
    done <"$here/.env"
fi
# Written next to compose.yaml, so relative paths (./secrets) mean the same.
out=$(mktemp "$here/.stack-deploy.XXXXXX.yaml")
trap 'rm -f "$out"' EXIT
PORTICO_STACK_PROFILES=${PORTICO_STACK_PROFILES:-} PORTICO_STACK_ENCRYPT=${PORTICO_STACK_ENCRYPT:-0} python3 - "$here/compose.yaml" "$out" <<'PY'
import os, re, sys, yaml

src, dst = sys.argv[1], sys.argv[2]
with open(src) as f:
    doc = yaml.safe_load(f)
wanted = {p for p in os.environ.get("PORTICO_STACK_PROFILES", "").replace(",", " ").split() if p}

def interpolate(text):
    def sub(m):
        name, dflt = m.group(1), m.group(3)
        v = os.environ.get(name, "")
        return v if v else (dflt or "")
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}", sub, str(text))

# Every service gets endpoint_mode dnsrr (no virtual IP), so published ports
# use mode host: bound on the node that runs the task, like `docker run -p`.
# A host address ("127.0.0.1:8080:8080") cannot be given in swarm: the port
# is published on every address of that node.
def host_port(p):
    if isinstance(p, dict):
        p = dict(p)
        p.pop("host_ip", None)
        p["mode"] = "host"
        for k in ("target", "published"):
            if k in p:
                p[k] = int(interpolate(p[k]))
        return p
    spec, _, proto = interpolate(p).partition("/")
    parts = spec.split(":")
    if len(parts) == 3:
        sys.stderr.write("stack-deploy: swarm publishes port %s on every address of the node (%s dropped)\n" % (parts[1], parts[0]))
        parts = parts[1:]
    published, target = (parts if len(parts) == 2 else [parts[0], parts[0]])
    return {"target": int(target), "published": int(published), "protocol": proto or "tcp", "mode": "host"}

out = {"version": "3.9"}
services = {}
for name, svc in doc.get("services", {}).items():
    profiles = svc.pop("profiles", None)
    if profiles and not wanted.intersection(profiles):
        continue
    for key in ("build", "restart", "container_name"):
        svc.pop(key, None)
    # DNS round robin instead of a virtual IP: ZeroMQ keeps long-lived
    # connections that gain nothing from IPVS (which drops idle ones after
    # 15 minutes, and is missing from some kernels, breaking VIPs entirely).
    svc.setdefault("deploy", {})["endpoint_mode"] = "dnsrr"
    if svc.get("ports"):
        svc["ports"] = [host_port(p) for p in svc["ports"]]
    deps = svc.pop("depends_on", None)
    if deps:  # order only; swarm starts everything at once anyway
        svc["depends_on"] = sorted(deps if isinstance(deps, list) else deps.keys())
    services[name] = svc
for name, svc in services.items():
    if "depends_on" in svc:
        svc["depends_on"] = [d for d in svc["depends_on"] if d in services]
        if not svc["depends_on"]:
            del svc["depends_on"]
out["services"] = services

networks = {}
for name, net in (doc.get("networks") or {}).items():
    net = dict(net or {})
    opts = {k: v for k, v in (net.pop("driver_opts", None) or {}).items() if not k.startswith("com.docker.network.bridge.")}
    if opts:
        net["driver_opts"] = opts
    net.setdefault("driver", "overlay")
    if os.environ.get("PORTICO_STACK_ENCRYPT") == "1" and net["driver"] == "overlay":
        net.setdefault("driver_opts", {})["encrypted"] = ""
    networks[name] = net
out["networks"] = networks
for key in ("volumes", "secrets", "configs"):
    if doc.get(key):
        out[key] = doc[key]

with open(dst, "w") as f:
    yaml.safe_dump(out, f, default_flow_style=False, sort_keys=False)
PY
cd "$here"
# --resolve-image never: images built locally are used as they are, and no
# registry is asked (set PORTICO_RESOLVE_IMAGE=always with a real registry).
docker stack deploy --resolve-image "${PORTICO_RESOLVE_IMAGE:-never}" -c "$out" "$stack"
