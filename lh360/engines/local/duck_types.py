"""DuckDB type strings as trees, and back: `STRUCT("a" BIGINT, b VARCHAR[])` ⇄ ("struct", [("a", ("scalar",
"BIGINT")), ("b", ("list", ("scalar", "VARCHAR")))]). Schema inference evolves nested structs with them; the
batch query walks a column's structs to rescue fields the schema lacks."""

from __future__ import annotations

from typing import Any

from lh360.sql import quote_ident as q


def parse_type_tree(text: str) -> Any:
    """A DuckDB type string → ("struct", [(name, tree)]) | ("list", tree) | ("scalar", text)."""
    return _parse(text.strip(), 0)[0]


def _parse(t: str, i: int) -> tuple[Any, int]:
    i = _skip(t, i)
    if t.startswith("STRUCT(", i):
        i += len("STRUCT(")
        fields = []
        while True:
            i = _skip(t, i)
            if t[i] == ")":
                i += 1
                break
            name, i = _name(t, i)
            sub, i = _parse(t, i)
            fields.append((name, sub))
            i = _skip(t, i)
            if t[i] == ",":
                i += 1
        tree: Any = ("struct", fields)
    else:
        start, depth = i, 0
        while i < len(t) and not (depth == 0 and t[i] in ",)["):
            depth += {"(": 1, ")": -1}.get(t[i], 0)
            i += 1
        tree = ("scalar", t[start:i].strip())
    while t.startswith("[]", _skip(t, i)):
        i = _skip(t, i) + 2
        tree = ("list", tree)
    return tree, i


def _skip(t: str, i: int) -> int:
    while i < len(t) and t[i] == " ":
        i += 1
    return i


def _name(t: str, i: int) -> tuple[str, int]:
    if t[i] == '"':
        out, i = [], i + 1
        while True:
            if t[i] == '"' and t[i + 1 : i + 2] == '"':
                out.append('"')
                i += 2
            elif t[i] == '"':
                return "".join(out), i + 1
            else:
                out.append(t[i])
                i += 1
    start = i
    while t[i] != " ":
        i += 1
    return t[start:i], i


def render_type_tree(tree: Any) -> str:
    kind, value = tree
    if kind == "struct":
        return "STRUCT(" + ", ".join(f"{q(n)} {render_type_tree(t)}" for n, t in value) + ")"
    if kind == "list":
        return render_type_tree(value) + "[]"
    return value
