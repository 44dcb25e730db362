#!/bin/sh
# Rotate one service's bus key on Docker Swarm, with no failed login:
#   docker/bus-rotate.sh SERVICE [STACK]        (web, registry, broker, bitbucket;
#                                                default stack name: portico)
# Run it where you run docker/stack-deploy.sh, with the same environment
# (PORTICO_SECRETS_DIR, PORTICO_IMAGE_PREFIX, replicas...): it changes the
# files in $PORTICO_SECRETS_DIR/bus and deploys again after each step,
# waiting each time until the services it rolled run the new secrets
# (stack-deploy.sh's PORTICO_STACK_WAIT=1), one service after the other
# (PORTICO_STACK_ONLY):
#   1. a new key pair SERVICE.next: every service that deals with SERVICE
#      rolls and then holds the new public key next to the old one (a
#      client connects with both, a server admits both);
#   2. SERVICE.next's secret key becomes SERVICE.cert_secret: SERVICE rolls,
#      one instance at a time, onto the new key; the others talk to old and
#      new instances alike;
#   3. SERVICE.next.cert becomes SERVICE.cert (the old public key goes),
#      those services roll again; a last deploy, which restarts nothing,
#      removes the Swarm secrets no service uses any more, the old key's
#      among them.
# PORTICO_ROTATE_STEPS="1" (or "2", "3", "2 3") runs only those steps, e.g.
# to watch the cluster between them; a step already done is done again
# harmlessly. Swarm secrets cannot change, so each key file is its own
# secret named after its content (README: Bus keys).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
svc=${1:-}
stack=${2:-portico}
case $svc in
web | registry | broker | bitbucket) ;;
*)
    echo "usage: docker/bus-rotate.sh web|registry|broker|bitbucket [STACK]" >&2
    exit 2
    ;;
esac
dir=${PORTICO_SECRETS_DIR:-$here/secrets}/bus
[ -s "$dir/$svc.cert_secret" ] || {
    echo "bus-rotate: no $dir/$svc.cert_secret: deploy with docker/stack-deploy.sh first" >&2
    exit 1
}
umask 077
say() { echo "bus-rotate: $*"; }
deploy() { PORTICO_STACK_WAIT=1 sh "$here/docker/stack-deploy.sh" "$stack"; }
# Steps 1 and 3 change the keys of several services: one service at a
# time (each deploy rolls one; one that has nothing new rolls nothing),
# since Swarm would roll them all at once, and a web and the brokers
# rolling together can leave no web ready for a moment.
deploy_each() {
    for s in broker bitbucket registry web; do
        [ "$s" = "$svc" ] || PORTICO_STACK_ONLY=$s deploy
    done
}
for step in ${PORTICO_ROTATE_STEPS:-1 2 3}; do
    case $step in
    1)
        say "step 1: a new key pair $svc.next; the services that deal with $svc learn its public key"
        sh "$here/docker/bus-keygen.sh" "$dir" "$svc.next"
        deploy_each
        ;;
    2)
        [ -s "$dir/$svc.next.cert_secret" ] || {
            echo "bus-rotate: no $svc.next key pair: step 1 first" >&2
            exit 1
        }
        say "step 2: $svc switches to the new key, one instance at a time"
        cp "$dir/$svc.next.cert_secret" "$dir/.$svc.cert_secret.new"
        mv "$dir/.$svc.cert_secret.new" "$dir/$svc.cert_secret"
        deploy
        ;;
    3)
        if [ -s "$dir/$svc.next.cert" ]; then
            # Never take the old public key away from a service still on it.
            cmp -s "$dir/$svc.next.cert_secret" "$dir/$svc.cert_secret" || {
                echo "bus-rotate: $svc does not hold the new key yet: step 2 first" >&2
                exit 1
            }
            say "step 3: the old public key of $svc goes"
            chmod 0644 "$dir/$svc.next.cert"
            mv "$dir/$svc.next.cert" "$dir/$svc.cert"
            rm -f "$dir/$svc.next.cert_secret"
            deploy_each
        fi
        say "step 3: removing the secrets no service uses any more"
        deploy
        ;;
    *)
        echo "bus-rotate: PORTICO_ROTATE_STEPS: steps are 1, 2 and 3, not \"$step\"" >&2
        exit 2
        ;;
    esac
done
say "done"
