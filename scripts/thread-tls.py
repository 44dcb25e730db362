#!/usr/bin/env python3
"""Fail when a service's thread-local storage is large.

    thread-tls.py BINARY...

glibc carves a thread's static TLS out of that thread's stack, and Debian's
civetweb starts every one of its threads (the web's request threads, every
service's health endpoint) with a 100 KB stack it sets when built. A 64 KB
_Thread_local buffer once left the registry's health threads 34 KB of it.
Large per-thread buffers belong on the heap; this keeps each binary's own
TLS segment (readelf's PT_TLS MemSiz) under LIMIT bytes."""
import subprocess
import sys

LIMIT = 16 * 1024


def tls_size(path):
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "TLS":
            return int(f[5], 16)  # Type Offset VirtAddr PhysAddr FileSiz MemSiz
    return 0


def main(paths):
    bad = 0
    for path in paths:
        size = tls_size(path)
        if size > LIMIT:
            print(f"{path}: {size} bytes of thread-local storage (limit {LIMIT}): every thread's stack pays it, "
                  "civetweb's 100 KB ones too; put large buffers on the heap", file=sys.stderr)
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
