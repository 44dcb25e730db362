#!/usr/bin/env python3
"""Fail when a C file of the web writes HTML instead of a template doing it.

    web-markup.py [FILE.c]...

The web's pages come from services/web/templates/*.html (tmpl.h): there the
markup is in one place and every value is escaped by default. A string
literal in C that holds an HTML tag ("<p", "</td>", "<a href=...") is markup
built around that, so each one found is printed and the exit status is 1.
With no arguments every services/web/*.c file is checked except tmpl.c,
the template engine itself (generated code lives under build/, not here).
"""
import glob
import os
import re
import sys

# HTML elements, opening or closing; an SVG image (static.c) is not a page.
TAGS = ("a abbr article aside b body br button caption code col dd details dialog div dl dt em fieldset footer "
        "form h1 h2 h3 h4 h5 h6 head header hr html i img input label legend li link main meta nav ol option "
        "p pre script section select small span strong style summary table tbody td textarea tfoot th thead "
        "title tr ul").split()
TAG = re.compile(r"<(?:!doctype\b|/?(?:%s)(?=[\s>/]|$))" % "|".join(TAGS), re.IGNORECASE)
SKIP = {"tmpl.c"}


def literals(text):
    """(line, contents) of every string literal, outside comments and chars."""
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            j, start = i + 1, line
            while j < n and text[j] != c:
                if text[j] == "\\":
                    j += 1
                if j < n and text[j] == "\n":
                    line += 1
                j += 1
            if c == '"':
                yield start, text[i + 1:j]
            i = j + 1
        else:
            i += 1


def main(argv):
    files = argv or sorted(f for f in glob.glob("services/web/*.c") if os.path.basename(f) not in SKIP)
    found = 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for line, s in literals(text):
            m = TAG.search(s)
            if m:
                found += 1
                print("%s:%d: HTML in C (%s...): put it in a template (services/web/templates)" %
                      (path, line, s[m.start():m.start() + 24]))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
