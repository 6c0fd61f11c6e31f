#!/usr/bin/env python3
"""The house's import rules, checked from the source (run by `make lint`).

1. No import circles between files: a file's `use crate::...`, `super::...` and inline
   `crate::a::b::C` paths are resolved to the file that defines the module; `mod.rs` and
   `lib.rs` are the rooms' doors (they declare and re-export their files) and are left out.
2. Rooms import downwards only: `LAYERS` below, top first; a room may import its own layer's
   rooms only where `SIDEWAYS` allows it.

Prints every circle and every upward import, exits 1 when there is one.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Top to bottom. A room imports rooms of lower layers; within a layer only the pairs in
# SIDEWAYS (the bottom layer's files may use each other).
LAYERS = [
    ["server"],
    ["heal", "upstreams"],
    ["proxy", "acme", "tls", "backup", "upgrade", "export"],
    ["engine", "releases"],
    ["stack", "journal", "metrics", "hook", "control"],
    ["config"],
    ["dify", "envfile", "interpolate", "cron", "fsutil", "lock", "cidr", "units", "timefmt", "stdio", "lib"],
]
# Same-layer imports that are allowed (importer, imported).
SIDEWAYS = {
    ("acme", "proxy"),  # an HTTP-01 answer is presented in the proxy's challenge map
    ("acme", "tls"),  # a TLS-ALPN-01 answer is presented in the resolver
    ("proxy", "tls"),
    ("upgrade", "backup"),  # an upgrade is backed up first
    ("heal", "upstreams"),
}


def modules():
    """Module path (tuple) -> file, for every .rs file of the library crate."""
    out = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.relpath(os.path.join(root, f), SRC)
            parts = path[:-3].split(os.sep)
            if parts[0] in ("main", "cli", "cmd") or parts[-1] == "tests":
                continue  # the binary crate: the top, imports anything
            if parts[-1] in ("mod", "lib"):
                parts = parts[:-1]
            out[tuple(parts)] = path
    return out


USE = re.compile(r"\buse\s+([^;]+);", re.S)
INLINE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    depth, start, parts = 0, None, []
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
    if "{" not in tree:
        return [tree]
    head = tree[: tree.index("{")]
    body = tree[tree.index("{") + 1 : tree.rindex("}")]
    depth, cur = 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        for e in expand(p):
            out.append(head + e)
    return out


def strip_comments_and_tests(text):
    text = re.sub(r"//[^\n]*", "", text)
    # `#[cfg(test)] mod tests { ... }` inline: tests may import anything.
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    return text


def resolve(path, here, mods):
    """A `crate::`/`super::`/`self::` path used in module `here` -> the module it names."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
    else:
        return None
    full = base + segs
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in mods:
            return tuple(full[:n])
    return None


def edges(mods):
    out = {}
    for mod, file in mods.items():
        text = strip_comments_and_tests(open(os.path.join(SRC, file)).read())
        # A file's module path for `super::` (a.rs and a/mod.rs are both module `a`; in a
        # non-mod file `super` is the parent, as in mod.rs's own `self`).
        here = mod
        targets = set()
        for m in USE.finditer(text):
            for p in expand(m.group(1)):
                t = resolve(p, here, mods)
                if t is not None:
                    targets.add(t)
        for m in INLINE.finditer(text):
            t = resolve(m.group(1) + m.group(2), here, mods)
            if t is not None:
                targets.add(t)
        targets.discard(mod)
        out[mod] = targets
    return out


def is_door(mods, mod):
    f = mods[mod]
    return f.endswith("mod.rs") or f == "lib.rs"


def circles(mods, graph):
    nodes = [m for m in graph if not is_door(mods, m)]
    g = {m: [t for t in graph[m] if t in graph and not is_door(mods, t)] for m in nodes}
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
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
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return comps


def layer_of(room):
    for i, layer in enumerate(LAYERS):
        if room in layer:
            return i
    return None


def upward(graph):
    bad = set()
    for mod, targets in graph.items():
        room = mod[0] if mod else "lib"
        for t in targets:
            other = t[0] if t else "lib"
            if room == other:
                continue
            a, b = layer_of(room), layer_of(other)
            if a is None or b is None:
                bad.add(f"{room}: not in scripts/imports.py's LAYERS" if a is None else
                        f"{other}: not in scripts/imports.py's LAYERS")
                continue
            bottom = a == len(LAYERS) - 1
            if b < a or (a == b and not bottom and (room, other) not in SIDEWAYS):
                bad.add(f"{'/'.join(mod) or 'lib'} imports {'/'.join(t)} ({other} is not below {room})")
    return sorted(bad)


def main():
    mods = modules()
    graph = edges(mods)
    problems = []
    for comp in circles(mods, graph):
        problems.append("import circle: " + " <-> ".join(mods[m] for m in comp))
    problems += upward(graph)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"imports: {len(mods)} files, no circles, every room imports downwards")


if __name__ == "__main__":
    main()
