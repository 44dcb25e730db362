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
# PORTICO_STACK_PRINT=1 prints the stack file instead of deploying it.
# PORTICO_STACK_WAIT=1 waits until the services run what was deployed;
# PORTICO_STACK_ONLY=web,broker gives new bus keys to those services only
# (docker/bus-rotate.sh uses both).
# PORTICO_BUS_SUBNET=10.231.0.0/24 (an IPv4 range unused on your nodes)
# gives the bus network that subnet, and each bus port binds its task's
# address in it (README: Docker Swarm); unset, bus ports bind every address.
# Several nodes: PORTICO_REPLICAS_<SERVICE>=N sets a service's instances
# (PORTICO_REPLICAS_WEB=2; DEMO_BITBUCKET for demo-bitbucket),
# PORTICO_PLACEMENT_<SERVICE>=constraint[,constraint] where it may run
# (PORTICO_PLACEMENT_POSTGRES=node.labels.portico.db==true), and
# PORTICO_MAX_PER_NODE=N at most N instances of web, registry, broker and
# bitbucket each on one node (1: a lost node costs each service one instance).
# Secrets: Swarm secrets named portico_db_password and portico_secret_key
# that you made (`docker secret create`) are used as they are. Otherwise the
# files in PORTICO_SECRETS_DIR (default ./secrets) are, and this script makes
# them on the first deploy (docker/make-secrets.sh: never replaced): back
# that folder up, the key in it decrypts every stored secret and token.
# compose.yaml's init-secrets service and "secrets" volume are left out:
# a volume is per node, a Swarm secret follows the task to any node.
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
secrets_dir=${PORTICO_SECRETS_DIR:-$here/secrets}
external=""
for name in db_password secret_key; do
    if docker secret inspect "portico_$name" >/dev/null 2>&1; then
        external="$external $name"
        echo "stack-deploy: $name: the Swarm secret portico_$name"
    fi
done
case $external in
*db_password*secret_key*) ;;
*) sh "$here/docker/make-secrets.sh" "$secrets_dir" ;;
esac
mkdir -p "$secrets_dir"
secrets_dir=$(cd "$secrets_dir" && pwd)
# The bus's CURVE key pairs, made once in $secrets_dir/bus by the registry
# image's `bus-keygen` (no network) and kept: each service gets its own pair
# and the public keys of the services it deals with as Swarm secrets, in
# /run/secrets. A further public key <service>.<suffix>.cert there (a key
# being rotated in: docker/bus-rotate.sh, README: Bus keys) goes with them.
umask 077
mkdir -p "$secrets_dir/bus"
sh "$here/docker/bus-keygen.sh" "$secrets_dir/bus" web registry broker bitbucket
# Written next to compose.yaml, so relative paths (./secrets) mean the same.
out=$(mktemp "$here/.stack-deploy.XXXXXX.yaml")
trap 'rm -f "$out" "$out.bus" "$out.err"' EXIT
PORTICO_STACK_PROFILES=${PORTICO_STACK_PROFILES:-} PORTICO_STACK_ENCRYPT=${PORTICO_STACK_ENCRYPT:-0} \
    STACK_SECRETS_DIR=$secrets_dir STACK_EXTERNAL_SECRETS=$external STACK_NAME=$stack \
    python3 - "$here/compose.yaml" "$out" "$out.bus" <<'PY'
import hashlib, os, re, sys, yaml

src, dst, bus_names = sys.argv[1], sys.argv[2], sys.argv[3]
with open(src) as f:
    doc = yaml.safe_load(f)
wanted = {p for p in os.environ.get("PORTICO_STACK_PROFILES", "").replace(",", " ").split() if p}
bus_subnet = os.environ.get("PORTICO_BUS_SUBNET", "")
if bus_subnet:
    import ipaddress
    try:
        bus_subnet = str(ipaddress.IPv4Network(bus_subnet))
    except ValueError as e:
        sys.exit("stack-deploy: PORTICO_BUS_SUBNET: must be an IPv4 range such as 10.231.0.0/24 (%s)" % e)

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
# Secrets: Swarm secrets (external) or files, never the per-node volume
# that compose's init-secrets fills.
needs = {"registry": ["db_password", "secret_key"], "postgres": ["db_password"]}
bus = ["web", "registry", "broker", "bitbucket"]
# The public keys each service needs: those of the services it calls and of
# those that call it (README: Bus keys). Only those, so that rotating one
# service's key rolls only the services that deal with it.
peers = {"web": ["registry", "bitbucket", "broker"], "registry": ["web", "broker"],
         "broker": ["web", "registry", "bitbucket"], "bitbucket": ["web", "broker"]}
# Every bus secret is named after its content (sha256), never reused with
# other content: Swarm secrets cannot change, and a new name in a service is
# what makes Swarm roll it (one instance at a time, update_config below)
# onto the new key. Unchanged files give the same names: nothing restarts.
bus_dir = os.path.join(os.environ["STACK_SECRETS_DIR"], "bus")
bus_secrets = {}
def bus_secret(kind, svc, file):
    with open(os.path.join(bus_dir, file), "rb") as f:
        name = "bus_%s_%s_%s" % (svc, kind, hashlib.sha256(f.read()).hexdigest()[:12])
    bus_secrets[name] = {"file": os.path.join(bus_dir, file)}
    return name
# Public keys: <svc>.cert, and <svc>.<suffix>.cert while a new key is
# rotated in (the servers admit, the clients connect with, every one).
pubs = {svc: ["%s.cert" % svc] for svc in bus}
for file in sorted(os.listdir(bus_dir)):
    m = re.fullmatch(r"(web|registry|broker|bitbucket)\.([A-Za-z0-9-]+)\.cert", file)
    if m:
        pubs[m.group(1)].append(file)
external = set(os.environ.get("STACK_EXTERNAL_SECRETS", "").split())
for name, svc in doc.get("services", {}).items():
    profiles = svc.pop("profiles", None)
    if profiles and not wanted.intersection(profiles):
        continue
    if name == "init-secrets":
        continue
    if svc.get("volumes"):
        def per_node(v):  # the volumes init-secrets fills: secrets, bus-*
            src = v.get("source") if isinstance(v, dict) else str(v).split(":")[0]
            return src == "secrets" or src.startswith("bus-")
        svc["volumes"] = [v for v in svc["volumes"] if not per_node(v)]
        if not svc["volumes"]:
            del svc["volumes"]
    if name in needs:
        svc["secrets"] = list(needs[name])
    if name in bus:
        svc.setdefault("environment", {})["PORTICO_BUS_KEYS_DIR"] = "/run/secrets"
        svc.setdefault("secrets", [])
        svc["secrets"].append({"source": bus_secret("key", name, name + ".cert_secret"),
                               "target": "%s.cert_secret" % name, "uid": "10001", "gid": "10001", "mode": 0o400})
        svc["secrets"] += [{"source": bus_secret("pub", p, f), "target": f, "mode": 0o444}
                           for p in peers[name] for f in pubs[p]]
    # Swarm puts a task's names in its DNS only once the task is healthy,
    # and a service binds its bus port before that: a bind to
    # "<service>.bus" would wait for a name that does not come yet. On Swarm
    # a bus port binds the task's address in PORTICO_BUS_SUBNET (the bus
    # network's fixed range, read from the interfaces) or, without one,
    # every address of the task (README, Docker Swarm); CURVE still admits
    # only the services declared as callers.
    env = svc.get("environment")
    if isinstance(env, dict):
        for k, v in list(env.items()):
            if k.endswith("_BIND") and isinstance(v, str):
                env[k] = re.sub(r"^tcp://[^:/\[\]]+\.bus:", "tcp://%s:" % (bus_subnet or "*"), v)
            # The same for a listener on the bus network (the web's
            # PORTICO_OPS_ADDR): the range, or every address of the task.
            if k.endswith("_ADDR") and isinstance(v, str):
                env[k] = re.sub(r"^[^:/\[\]]+\.bus:", "%s:" % (bus_subnet or "0.0.0.0"), v)
    # Hardening in the forms version 3 knows: the memory limit as a resource
    # limit, tmpfs as tmpfs mounts (Swarm's are mode 1777). Swarm ignores
    # cap_drop and security_opt and has no pids limit in this format.
    mem = svc.pop("mem_limit", None)
    if mem:
        svc.setdefault("deploy", {}).setdefault("resources", {}).setdefault("limits", {})["memory"] = str(mem)
    svc.pop("pids_limit", None)
    for t in svc.pop("tmpfs", None) or []:
        target, _, opts = str(t).partition(":")
        mount = {"type": "tmpfs", "target": target}
        opts = dict(o.split("=", 1) for o in opts.split(",") if "=" in o)
        if "uid" in opts:
            # version 3 cannot give a tmpfs an owner (postgres' socket
            # folder): keep the image's folder, and a writable root.
            svc.pop("read_only", None)
            continue
        size = opts.get("size")
        if size:
            units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
            mount["tmpfs"] = {"size": int(size[:-1]) * units[size[-1].lower()] if size[-1].lower() in units else int(size)}
        svc.setdefault("volumes", []).append(mount)
    for key in ("build", "restart", "container_name"):
        svc.pop(key, None)
    # Instances and where they run, from the environment (README: Docker
    # Swarm, several nodes). Checked here: a typo must not deploy one instance.
    key = name.upper().replace("-", "_")
    n = os.environ.get("PORTICO_REPLICAS_" + key, "")
    if n:
        if not n.isdigit():
            sys.exit("stack-deploy: PORTICO_REPLICAS_%s must be a number, not %r" % (key, n))
        svc.setdefault("deploy", {})["replicas"] = int(n)
    cons = [c.strip() for c in os.environ.get("PORTICO_PLACEMENT_" + key, "").split(",") if c.strip()]
    if cons:
        svc.setdefault("deploy", {}).setdefault("placement", {})["constraints"] = cons
    per_node = os.environ.get("PORTICO_MAX_PER_NODE", "")
    if per_node and name in bus:
        if not per_node.isdigit() or per_node == "0":
            sys.exit("stack-deploy: PORTICO_MAX_PER_NODE must be a number above 0, not %r" % per_node)
        svc.setdefault("deploy", {}).setdefault("placement", {})["max_replicas_per_node"] = int(per_node)
    # Swarm, unlike compose, replaces a task whose health check fails. For
    # the one PostgreSQL that is an outage, and a starved machine (checks
    # taking over the image's 3 s) is reason enough: give it more time.
    if name == "postgres":
        svc["healthcheck"] = {"test": ["CMD", "pg_isready", "-q", "-h", "/var/run/postgresql", "-d", "portico"],
                              "interval": "5s", "timeout": "10s", "retries": 6, "start_period": "120s"}
    # The same for the demo Bitbucket, which stands for the company's own
    # Bitbucket: a replacement under load would cost every login in flight.
    if name == "demo-bitbucket":
        svc["healthcheck"] = {"test": ["CMD", "/usr/local/bin/demo-bitbucket", "healthcheck"],
                              "interval": "5s", "timeout": "10s", "retries": 6, "start_period": "30s"}
    # Rolling updates (and rollbacks) replace one instance at a time: the
    # old one stops first (its published port, mode host, is then free on
    # its node), leaves for PORTICO_STOP_DELAY_SECONDS while bus clients and
    # the load balancer move away, and drains; the next waits until the new
    # one has been healthy for a while, so each service always keeps one
    # instance serving (README: Docker Swarm, several nodes).
    if name in bus:
        roll = {"parallelism": 1, "delay": "10s", "order": "stop-first", "monitor": "15s", "failure_action": "pause"}
        svc.setdefault("deploy", {})["update_config"] = dict(roll)
        svc["deploy"]["rollback_config"] = dict(roll)
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
    if name == "bus" and bus_subnet:
        net["ipam"] = {"config": [{"subnet": bus_subnet}]}
    if os.environ.get("PORTICO_STACK_ENCRYPT") == "1" and net["driver"] == "overlay":
        net.setdefault("driver_opts", {})["encrypted"] = ""
    networks[name] = net
out["networks"] = networks
volumes = {k: v for k, v in (doc.get("volumes") or {}).items() if k != "secrets" and not k.startswith("bus-")}
if volumes:
    out["volumes"] = volumes
out["secrets"] = {
    n: ({"external": True, "name": "portico_" + n} if n in external
        else {"file": os.path.join(os.environ["STACK_SECRETS_DIR"], n)})
    for n in ("db_password", "secret_key")
}
out["secrets"].update(bus_secrets)
# PORTICO_STACK_ONLY=svc[,svc]: only those of the bus services take their
# new bus secrets; the others keep the ones they run with (Swarm secrets
# that exist, by name), so this deploy rolls those services alone.
# docker/bus-rotate.sh rolls one service at a time so: Swarm would roll
# every changed service at once, and a web and the brokers rolling
# together can leave no web ready for a moment.
only = set(os.environ.get("PORTICO_STACK_ONLY", "").replace(",", " ").split())
if only:
    import json, subprocess
    prefix = os.environ["STACK_NAME"] + "_"
    for name in bus:
        if name in only or name not in services:
            continue
        r = subprocess.run(["docker", "service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
                            prefix + name], capture_output=True, text=True)
        if r.returncode != 0:
            continue  # not deployed yet: it gets the new ones
        kept = []
        for ref in json.loads(r.stdout) or []:
            key = ref["SecretName"][len(prefix):] if ref["SecretName"].startswith(prefix + "bus_") else None
            if key is None:
                continue
            if key not in out["secrets"]:
                out["secrets"][key] = {"external": True, "name": ref["SecretName"]}
            f = ref["File"]
            kept.append({"source": key, "target": f["Name"], "uid": f["UID"], "gid": f["GID"], "mode": f["Mode"]})
        svc = services[name]
        svc["secrets"] = [x for x in svc["secrets"] if not (isinstance(x, dict) and x["source"].startswith("bus_"))] + kept
# The Swarm names of the bus secrets, for the removal of unused ones.
with open(bus_names, "w") as f:
    f.write("".join("%s_%s\n" % (os.environ["STACK_NAME"], n) for n in sorted(bus_secrets)))
if doc.get("configs"):
    out["configs"] = doc["configs"]

with open(dst, "w") as f:
    yaml.safe_dump(out, f, default_flow_style=False, sort_keys=False)
PY
cd "$here"
if [ "${PORTICO_STACK_PRINT:-0}" = 1 ]; then # show what would be deployed
    cat "$out"
    exit 0
fi
# Bus secrets of this stack that neither this deploy nor any service uses
# (keys rotated out, README: Bus keys) are removed. Before deploying, so
# that a rolling update still under way, or its rollback, keeps the secrets
# of the tasks it replaces: those go on the next deploy.
in_use=$(
    cat "$out.bus"
    docker service ls -q --filter "label=com.docker.stack.namespace=$stack" |
        xargs -r docker service inspect --format '{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{println .SecretName}}{{end}}'
)
for s in $(docker secret ls --filter "label=com.docker.stack.namespace=$stack" --format '{{.Name}}'); do
    case $s in "${stack}_bus_"*) ;; *) continue ;; esac
    printf '%s\n' "$in_use" | grep -qxF "$s" && continue
    docker secret rm "$s" >/dev/null && echo "stack-deploy: removed the Swarm secret $s (no service uses it any more)"
done
# --resolve-image never: images built locally are used as they are, and no
# registry is asked (set PORTICO_RESOLVE_IMAGE=always with a real registry).
# Swarm refuses a service update with "update out of sequence" when the
# service changed between the read and the write (its own reconciling after
# a node change, an update still finishing). A deploy is idempotent, so
# that one is tried again, up to five times; any other failure is final.
tries=0
while :; do
    if docker stack deploy --resolve-image "${PORTICO_RESOLVE_IMAGE:-never}" -c "$out" "$stack" 2>"$out.err"; then
        cat "$out.err" >&2
        break
    fi
    cat "$out.err" >&2
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ] || ! grep -q "update out of sequence" "$out.err"; then
        exit 1
    fi
    echo "stack-deploy: Swarm said \"update out of sequence\"; deploying again ($tries)" >&2
    sleep 2
done
[ "${PORTICO_STACK_WAIT:-0}" = 1 ] || exit 0

# PORTICO_STACK_WAIT=1: wait until every service of the stack runs as many
# tasks as it wants, all with the secrets it now names, and no rolling
# update is under way (docker/bus-rotate.sh waits so between its steps).
# A paused update stops the wait with its message; so does the time limit
# (PORTICO_STACK_WAIT_SECONDS, default 900).
rolled() { # prints what still rolls; fails on a paused update
    for id in $(docker service ls -q --filter "label=com.docker.stack.namespace=$stack"); do
        info=$(docker service inspect --format '{{.Spec.Name}} {{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{else}}-{{end}} {{if .UpdateStatus}}{{.UpdateStatus.State}}{{else}}none{{end}} {{range .Spec.TaskTemplate.ContainerSpec.Secrets}}{{.SecretName}},{{end}}' "$id") ||
            { echo "$id" && continue; } # asked again on the next round
        set -- $info
        name=$1 want=$2 state=$3 secrets=${4:-}
        case $state in
        paused | rollback_paused)
            echo "stack-deploy: the update of $name is paused: $(docker service inspect --format '{{.UpdateStatus.Message}}' "$id")" >&2
            return 1
            ;;
        updating | rollback_started) echo "$name" && continue ;;
        esac
        [ "$want" = - ] && continue
        n=$(docker service ps -q --filter desired-state=running "$id" |
            xargs -r docker inspect --format '{{.Status.State}} {{range .Spec.ContainerSpec.Secrets}}{{.SecretName}},{{end}}' |
            grep -cxF "running $secrets" || true) # grep -c fails on 0
        [ "$n" = "$want" ] || echo "$name"
    done
}
end=$(($(date +%s) + ${PORTICO_STACK_WAIT_SECONDS:-900}))
while :; do
    left=$(rolled) || exit 1
    [ -z "$left" ] && break
    if [ "$(date +%s)" -ge "$end" ]; then
        echo "stack-deploy: still rolling after ${PORTICO_STACK_WAIT_SECONDS:-900} s:" $left >&2
        exit 1
    fi
    sleep 2
done
echo "stack-deploy: every service runs what was deployed"
