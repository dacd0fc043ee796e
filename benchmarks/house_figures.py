"""Figures of the house: how easy the package is to read and change.

    python benchmarks/house_figures.py [SRC]        # default: src/jointaug

Prints modules and folders, the largest module, functions over 60 and 80 lines,
functions with 10 or more parameters (self/cls not counted), ``# fmt: skip`` markers,
import circles between modules (every import, also those inside functions) and
"upward arrows": a module of a lower room importing a higher one (the rooms, bottom
to top, are listed in ``FLOORS``; ``commands``/``cli`` are the top).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

# rooms from the ground up: a room may import rooms on its own floor or below
FLOORS = [
    {"files", "progress", "keys", "init", "runtime"},
    {"config", "weights", "training", "curves", "outputs", "dataset"},
    {"masks", "natural", "diffusion", "classify"},
    {"sets", "fidelity", "generate"},  # generate/: the room before sets/ and fidelity/
    {"experiments"},
    {"commands", "cli", "__init__"},
]


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def floor(module: str) -> int:
    r = room(module)
    return next((i for i, rooms in enumerate(FLOORS) if r in rooms), len(FLOORS))


def module_name(path: Path, src: Path) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(tree: ast.AST, package: str) -> set[str]:
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith(package):
            out.add(n.module)
            for a in n.names:  # "from jointaug.sets import registry" names a module
                out.add(f"{n.module}.{a.name}")
        elif isinstance(n, ast.Import):
            out.update(a.name for a in n.names if a.name.startswith(package))
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default="src/jointaug")
    src = Path(ap.parse_args().src)
    files = sorted(src.rglob("*.py"))
    mods = {module_name(p, src): p for p in files}
    long60, long80, many, skips, sizes = [], [], [], 0, {}
    graph: dict[str, set[str]] = {}
    for name, p in mods.items():
        text = p.read_text(encoding="utf-8")
        sizes[name] = text.count("\n")
        skips += text.count("# fmt: skip")
        tree = ast.parse(text)
        graph[name] = {
            m for m in imports_of(tree, src.name) if m in mods and m not in (name, src.name)
        }
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = n.args
                k = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs)
                k -= 1 if a.args and a.args[0].arg in ("self", "cls") else 0
                length = n.end_lineno - n.lineno + 1
                where = f"{p}:{n.lineno} {n.name}"
                if length > 60:
                    long60.append(f"{where} ({length} lines)")
                if length > 80:
                    long80.append(where)
                if k >= 10:
                    many.append(f"{where} ({k} parameters)")
    up = sorted(f"{a} -> {b}" for a, deps in graph.items() for b in deps if floor(b) > floor(a))
    folders = {p.parent for p in files}
    big = max(sizes, key=sizes.get)
    print(f"modules: {len(files)} in {len(folders)} folders, {sum(sizes.values()):,} lines")
    print(f"largest module: {big} ({sizes[big]} lines)")
    print(f"functions over 60 lines: {len(long60)}; over 80 lines: {len(long80)}")
    for f in long60:
        print(f"  {f}")
    print(f"functions with >= 10 parameters: {len(many)}")
    for f in many:
        print(f"  {f}")
    print(f"'# fmt: skip' markers: {skips}")
    cs = circles(graph)
    print(f"import circles: {len(cs)}")
    for c in cs:
        print(f"  {' <-> '.join(c)}")
    print(f"upward arrows: {len(up)}")
    for a in up:
        print(f"  {a}")


if __name__ == "__main__":
    main()
