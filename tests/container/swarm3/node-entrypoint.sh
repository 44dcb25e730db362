#!/bin/sh
# A Swarm node of tests/container/swarm3.sh: Docker's engine in a container. Its API socket is in /run/node (a folder of the test's work
# directory, mounted here), so the host reaches each engine without a TCP
# port. $1: the address of the test's image registry (insecure: plain HTTP,
# on the test's own network only).
set -eu
registry=$1
mkdir -p /etc/docker /run/node
cat >/etc/docker/daemon.json <<JSON
{
  "insecure-registries": ["$registry"],
  "hosts": ["unix:///run/node/docker.sock", "unix:///var/run/docker.sock"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"},
  "default-address-pools": [{"base": "172.30.0.0/16", "size": 24}]
}
JSON
# Not --privileged (a machine whose root lacks a capability, as some sandboxes
# do, cannot start such a container), but every capability it has, no seccomp
# or AppArmor profile and unmasked /proc and /sys (swarm3.sh's docker run):
# what is still read-only is made writable here, for the engine to manage its
# own containers' cgroups and network settings.
mount -o remount,rw /sys
# cgroup v1 (the container has its own cgroup namespace): mount each
# hierarchy again, read-write, rooted at this container's group.
mount | awk '$5 == "cgroup" { print $3, $6 }' | while read -r dir opts; do
    opts=$(echo "$opts" | tr -d '()' | tr , '\n' | grep -vxE 'ro|rw|nosuid|nodev|noexec|relatime' | paste -sd, -)
    umount "$dir" && mount -t cgroup -o "$opts" cgroup "$dir"
done
# cgroup v2: move this shell out of the root group first, so the engine may
# enable the controllers for its containers (what docker:dind does).
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p /sys/fs/cgroup/init
    xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || true
    sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control || true
fi
# A node killed and started again (the test's lost machine) keeps /run: the
# engine's and containerd's state of the last boot must go, as on a real boot.
rm -rf /run/docker /run/containerd /run/docker.pid /run/docker.sock /run/node/docker.sock
exec dockerd
