#!/usr/bin/env python3
"""Fail when the files of one service depend on each other in a circle.

    module-cycles.py OBJ_DIR [--fail SERVICE]...

A file depends on another when its object uses a symbol (function or
variable) the other's object defines: `nm` says so whatever the headers
look like, so an umbrella header cannot hide a circle. Every service under
OBJ_DIR/services is checked and every circle printed; the exit status is 1
when a circle is found in a service named with --fail (all services when
none is named).
"""
import os
import subprocess
import sys


def symbols(path):
    out = subprocess.run(["nm", "--defined-only", "-g", path], capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if len(line.split()) == 3}
    out = subprocess.run(["nm", "--undefined-only", "-g", path], capture_output=True, text=True, check=True).stdout
    used = {line.split()[-1] for line in out.splitlines() if line.split()}
    return defined, used


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def path_in(graph, comp):
    """One circle through the component, for the message: a -> b -> a."""
    start = comp[0]
    members = set(comp)
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                walk = [v]
                while prev[walk[-1]]:
                    walk.append(prev[walk[-1]])
                return list(reversed(walk)) + [start]
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main(argv):
    if not argv:
        sys.exit(__doc__)
    root, must = argv[0], [argv[i + 1] for i, a in enumerate(argv) if a == "--fail"]
    services = os.path.join(root, "services")
    failed = False
    for service in sorted(os.listdir(services)):
        d = os.path.join(services, service)
        # Only objects whose source is still there (run from the top directory).
        objs = sorted(f for f in os.listdir(d)
                      if f.endswith(".o") and os.path.exists(os.path.join("services", service, f[:-2] + ".c")))
        defs, uses = {}, {}
        for o in objs:
            defs[o[:-2]], uses[o[:-2]] = symbols(os.path.join(d, o))
        owner = {s: f for f, ds in defs.items() for s in ds}
        graph = {f: {owner[s] for s in uses[f] if s in owner and owner[s] != f} for f in defs}
        for comp in cycles(graph):
            counts = not must or service in must
            failed |= counts
            print("%s: files depend on each other in a circle: %s (all of %s)%s" %
                  (service, " -> ".join(c + ".c" for c in path_in(graph, comp)), ", ".join(c + ".c" for c in comp),
                   "" if counts else "; reported only"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
