#!/usr/bin/env bash
# Make a stand-in for debian:bookworm-slim when it cannot be pulled (a machine
# with Debian's archive but no container registry). debootstrap's minbase,
# then trimmed the way the official "slim" variant is: no apt lists or .deb
# cache, no docs/man pages/locales, and the dpkg and apt settings that keep
# later `apt-get install` layers just as lean. The Dockerfiles stay exactly
# as they are for users who can pull the real image.
#   tests/container/make-base-image.sh [IMAGE]   (default debian:bookworm-slim)
set -euo pipefail
image=${1:-debian:bookworm-slim}
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image: $image already present"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /tmp/portico-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base image: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/tmp/portico-debootstrap.log 2>&1 ||
  { tail -20 /tmp/portico-debootstrap.log >&2; exit 1; }

# apt sources as in the official image (bookworm, updates, security).
cat >"$rootfs/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SRC
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
# "slim": files containers do not need, kept out by later installs too.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"

# What the official slim image does not carry.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/lintian/* "$rootfs"/usr/share/linda/*
find "$rootfs/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
: >"$rootfs/etc/machine-id"
echo "debian" >"$rootfs/etc/hostname"

tar -C "$rootfs" --numeric-owner -c . | docker import -c 'CMD ["bash"]' - "$image" >/dev/null
echo "base image: $image made ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f MB", $1/1e6}'))"
