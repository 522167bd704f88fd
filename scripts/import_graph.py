#!/usr/bin/env python3
"""The import graph of lh360/, from the source (no imports run): cycles, function-level imports, and engine
names compared outside lh360/engines/. `tests/test_architecture.py` asserts on it; run it to see the figures:

    python scripts/import_graph.py            # summary
    python scripts/import_graph.py --list     # every function-level import, and why it is not at the top

A function-level import is justified when it keeps a heavy library off the import path of its module: it
imports a HEAVY library itself, or an lh360 module that loads one its importer does not load, or a comment on
its line (or the line above) says why it is not at the top. Every other import belongs at the top.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lh360"
# third-party libraries too slow to import on the `lh360 --help` path (see benchmarks/bench_help.py)
HEAVY = {
    "pydantic",
    "sqlglot",
    "duckdb",
    "deltalake",
    "pyarrow",
    "boto3",
    "botocore",
    "databricks",
    "pyathena",
    "yaml",
    "rich",
    "pyspark",
    "requests",
}
ENGINE_NAMES = {"local", "databricks"}
VALIDATOR_NAMES = {"duckdb", "athena", "databricks-sql"}


@dataclass
class Module:
    name: str
    path: Path
    top: set[str] = field(default_factory=set)  # lh360 modules imported at module level
    local: list[tuple[int, str]] = field(default_factory=list)  # (line, lh360 module) imported in a function
    third_top: set[str] = field(default_factory=set)  # third-party top-level packages imported at module level
    deferred: list[Deferred] = field(default_factory=list)  # every import inside a function (any module)


@dataclass
class Deferred:
    """An import inside a function: the line, the module it loads, and the comment that says why, if any."""

    line: int
    target: str
    comment: str = ""


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(mod: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.name.split(".")
    if mod.path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(node: ast.AST, mod: Module, known: set[str]) -> list[str]:
    """The lh360 modules an import statement loads (a `from pkg import name` may name a submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = _resolve(mod, node)
    subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
    # `from pkg import submodule` imports the submodule (its package only as its parent)
    return subs if len(subs) == len(node.names) else [base, *subs]


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def _in_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return True
    return False


def _comment(lines: list[str], node: ast.AST) -> str:
    """The comment on an import's line or alone on the line above (lint directives are no reason)."""
    line = lines[node.lineno - 1]
    same = line[line.index("#") + 1 :].strip() if "#" in line else ""
    above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
    for text in (same, above[1:].strip() if above.startswith("#") else ""):
        if text and not text.startswith(("type:", "noqa", "pragma")):
            return text
    return ""


def load() -> dict[str, Module]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p): Module(module_name(p), p) for p in paths}
    known = set(modules)
    for mod in modules.values():
        source = mod.path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or _in_type_checking(node, parents):
                continue
            in_function = _in_function(node, parents)
            for target in _targets(node, mod, known):
                if in_function and (not target.startswith("lh360") or target in known):
                    mod.deferred.append(Deferred(node.lineno, target, _comment(lines, node)))
                top = target.split(".")[0]
                if top != "lh360":
                    if not _in_function(node, parents) and top:
                        mod.third_top.add(top)
                    continue
                if target not in known:
                    continue
                if _in_function(node, parents):
                    mod.local.append((node.lineno, target))
                else:
                    mod.top.add(target)
    return modules


def closure(modules: dict[str, Module], start: str) -> set[str]:
    """Every lh360 module `start` loads at import time (itself included)."""
    seen, stack = set(), [start]
    while stack:
        name = stack.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        stack.extend(modules[name].top)
        parts = name.split(".")
        stack.extend(".".join(parts[:i]) for i in range(2, len(parts)))
    return seen


def heavy_at_import(modules: dict[str, Module], name: str) -> set[str]:
    """The heavy third-party libraries importing `name` loads."""
    return {lib for m in closure(modules, name) for lib in modules[m].third_top if lib in HEAVY}


def cycles(modules: dict[str, Module], *, with_local: bool = True) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), over the imports the code writes
    (module level and, with `with_local`, function level). A package's __init__ that re-exports a submodule
    is not counted as the submodule importing its package."""
    edges = {n: set(m.top) | ({t for _, t in m.local} if with_local else set()) for n, m in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in modules:
                continue
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

    for v in modules:
        if v not in index:
            visit(v)
    return out


def justification(modules: dict[str, Module], mod: Module, imp: Deferred) -> str:
    """Why `imp` is inside a function ("" when nothing justifies it): the heavy libraries it keeps off the
    import path of `mod`, or the comment that says why."""
    top = imp.target.split(".")[0]
    if top in HEAVY:
        return top
    if top == "lh360":
        heavy = heavy_at_import(modules, imp.target) - heavy_at_import(modules, mod.name)
        if heavy:
            return ", ".join(sorted(heavy))
    return f"# {imp.comment}" if imp.comment else ""


def unjustified_local_imports(modules: dict[str, Module]) -> list[str]:
    """Function-level imports that keep no heavy library off the import path and say no reason: they belong
    at the top."""
    return [
        f"{mod.path.relative_to(ROOT)}:{imp.line}: {imp.target}"
        for mod in modules.values()
        for imp in mod.deferred
        if not justification(modules, mod, imp)
    ]


def engine_name_switches() -> list[str]:
    """Comparisons of an engine or validator attribute with a literal name, outside lh360/engines/."""
    out = []
    names = ENGINE_NAMES | VALIDATOR_NAMES
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.is_relative_to(PACKAGE / "engines"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            attrs = [s for s in sides if isinstance(s, ast.Attribute) and s.attr in ("engine", "validator")]
            lits = [s for s in sides if isinstance(s, ast.Constant) and s.value in names]
            if attrs and lits:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return out


def main() -> int:
    modules = load()
    local = sum(len(m.local) for m in modules.values())
    deferred = sum(len(m.deferred) for m in modules.values())
    print(f"modules: {len(modules)}")
    print(f"import cycles (module and function level): {len(cycles(modules))}")
    for comp in cycles(modules):
        print("  " + " ↔ ".join(comp))
    print(f"function-level imports: {deferred} (of lh360 modules: {local})")
    bad = unjustified_local_imports(modules)
    print(f"  of which keep no heavy library off the import path and say no reason (belong at the top): {len(bad)}")
    switches = engine_name_switches()
    print(f"engine/validator name switches outside lh360/engines/: {len(switches)}")
    if "--list" in sys.argv:
        for m in modules.values():
            for imp in m.deferred:
                why = justification(modules, m, imp) or "UNJUSTIFIED"
                print(f"  {m.path.relative_to(ROOT)}:{imp.line}: {imp.target}  [{why}]")
        for s in switches:
            print("  " + s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
