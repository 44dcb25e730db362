#!/usr/bin/env python3
"""The registry reads result columns by name (db_col, db_columns), never by
number: a column added to a query must not silently shift the others.

Fails when a registry .c file calls db_get_* or PQgetvalue / PQgetisnull /
PQgetlength with a column argument that is a number: a literal, a constant
in capitals, or arithmetic on either (col + 1, 3 + i)."""
import glob
import re
import sys

CALL = re.compile(r"\b(db_get_[a-z]+|PQget(?:value|isnull|length))\s*\(")
# A column argument made only of literals, CONSTANTS, operators and parens.
CONSTANT = re.compile(r"^[\s()+\-*]*(?:(?:\d+|[A-Z][A-Z0-9_]*)[\s()+\-*]*)+$")
# Arithmetic with a literal on a variable: col + 1, 3 + i.
ARITHMETIC = re.compile(r"(?:[+\-*]\s*\d+\b)|(?:\b\d+\s*[+\-*])")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"'(?:\\.|[^'\\\n])'", "' '", text)
    text = re.sub(r'"(?:\\.|[^"\\\n])*"', '""', text)
    return re.sub(r"//[^\n]*", "", text)


def arguments(text, start):
    """The top-level arguments of the call whose '(' is at start."""
    depth, args, cur = 0, [], []
    for ch in text[start:]:
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(cur))
                return args
        elif ch == "," and depth == 1:
            args.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    return args


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "services/registry"
    bad = []
    for path in sorted(glob.glob(root + "/*.c")):
        if path.endswith("/db.c"):  # the getters themselves
            continue
        text = strip_comments(open(path, encoding="utf-8").read())
        for m in CALL.finditer(text):
            args = arguments(text, m.end() - 1)
            if len(args) < 3:
                continue
            col = args[2].strip()
            if CONSTANT.match(col) or ARITHMETIC.search(col):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{path}:{line}: {m.group(1)}(..., {col})")
    if bad:
        print("\n".join(bad))
        print("column-reads: read these columns by name (db_col or db_columns), not by number")
        return 1
    print("column-reads: the registry reads every result column by name")
    return 0


if __name__ == "__main__":
    sys.exit(main())
