"""Schema inference from JSON lines, as Auto Loader does on a table's first batch: from a sample.

Only fields that can be columns become columns (the others stay in `_rescued_data`, see batch_query):
not an empty name, not a name of lh360's own columns (`is_reserved`), not a second spelling of a name
already taken that differs only in case (Delta and Spark resolve columns case-insensitively), and nested
at most MAX_DEPTH levels (deeper values are kept as JSON text: delta-rs cannot read a schema nested much
deeper, and nothing real is).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from lh360.engines.local import lines as lines_mod
from lh360.engines.local.batch_query import LINES, is_reserved
from lh360.engines.local.duck_types import parse_type_tree, render_type_tree
from lh360.sql import quote_ident as q

# a line repeating a top-level key is a corrupt record (batch_query): its fields are no evidence of a column
_UNIQUE_KEYS = "len(json_keys(line)) = len(list_distinct(json_keys(line)))"
MAX_DEPTH = 32  # struct/array levels under a column; measured: delta-rs refuses a schema 48 structs deep


def infer_schema(
    con,
    paths: list[Path],
    sample_lines: int | None = 20480,
    sample_files: int | None = 32,
    limits: list[int | None] | None = None,
) -> dict[str, str]:
    """Infer top-level columns from JSON lines, as Auto Loader does on its first batch: from a sample.

    With limits, the sample is the first object lines of the first `sample_files` files, read in Python
    from their first bytes (cheap on a large batch); without, every line of every file (DuckDB).
    Conflicting types → string; null-only → string.
    """
    if not paths:
        return {}
    if sample_lines is None:
        structure = None
        for chunk in lines_mod.chunks(paths, limits=limits):
            cur = con.cursor()
            cur.register("__lines", chunk)
            part = cur.execute(
                f"WITH {LINES} SELECT json_group_structure(line::JSON) FROM c "
                "WHERE starts_with(ltrim(line, ' ' || chr(9) || chr(13)), '{') AND json_valid(line) "
                f"AND {_UNIQUE_KEYS}"
            ).fetchall()[0][0]
            cur.close()
            structure = _merge_structure(structure, part)
    else:
        structure = _sample_structure(con, paths[:sample_files], sample_lines)
    if not structure:
        return {}
    parsed = _load_structure(structure)
    if not isinstance(parsed, dict):
        return {}
    return {name: _structure_type(t) for name, t in _columnable(parsed).items() if not is_reserved(name)}


def _columnable(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields that can be struct fields or columns: named, and the first of names equal but for case."""
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for name, t in fields.items():
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out[name] = t
    return out


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|[^"\[\]{}]+', re.DOTALL)


def _load_structure(structure: Any) -> Any:
    """json_group_structure's result, parsed, with anything nested deeper than MAX_DEPTH under a column
    replaced by "VARCHAR" (kept as JSON text): a line nested thousands deep must not stop the table, and
    Python's parser would not even read its structure."""
    if not isinstance(structure, str):
        return structure
    out: list[str] = []
    depth = 0
    cut_at: int | None = None  # the depth of the container being replaced
    for m in _TOKEN.finditer(structure):
        tok = m.group()
        if tok in ("[", "{"):
            depth += 1
            if cut_at is None and depth > MAX_DEPTH + 1:  # +1: the top object holds the columns
                cut_at = depth
                out.append('"VARCHAR"')
                continue
        elif tok in ("]", "}"):
            depth -= 1
            if cut_at is not None and depth == cut_at - 1:
                cut_at = None
                continue
        if cut_at is None:
            out.append(tok)
    return json.loads("".join(out))


def _sample_structure(con, paths: list[Path], sample_lines: int) -> str | None:
    import pyarrow as pa

    per_file = max(1, sample_lines // max(1, len(paths)))
    lines: list[str] = []
    for path in paths:
        taken = 0
        with open(path, "rb") as fh:
            for raw in fh:
                line = raw.decode("utf-8", errors="replace").strip().lstrip("\ufeff")
                if line.startswith("{"):
                    lines.append(line)
                    taken += 1
                    if taken >= per_file:
                        break
    if not lines:
        return None
    sample = pa.table({"line": pa.array(lines, pa.string())})
    cur = con.cursor()
    cur.register("__sample", sample)
    return cur.execute(
        "SELECT json_group_structure(line::JSON) FROM __sample WHERE json_valid(line) AND json_type(line) = 'OBJECT' "
        f"AND {_UNIQUE_KEYS}"
    ).fetchall()[0][0]


_STRUCTURE_TYPES = {
    "UBIGINT": "BIGINT",
    "BIGINT": "BIGINT",
    "DOUBLE": "DOUBLE",
    "BOOLEAN": "BOOLEAN",
    "VARCHAR": "VARCHAR",
}


def _structure_type(t: Any) -> str:
    """json_structure's description → the DuckDB type bronze stores (unknown, null-only and mixed → text)."""
    if isinstance(t, dict):
        t = _columnable(t)
        if not t:
            return "VARCHAR"
        fields = ", ".join(f"{q(k)} {_structure_type(v)}" for k, v in t.items())
        return f"STRUCT({fields})"
    if isinstance(t, list):
        return f"{_structure_type(t[0]) if t else 'VARCHAR'}[]"
    return _STRUCTURE_TYPES.get(str(t), "VARCHAR")


def _merge_structure(a: Any, b: Any) -> Any:
    """Two json_group_structure results (JSON text or parsed) → one, as if computed over both inputs."""
    a = _load_structure(a) if isinstance(a, str) and a[:1] in "{[" else a
    b = _load_structure(b) if isinstance(b, str) and b[:1] in "{[" else b
    if a is None or a == "NULL":
        return b
    if b is None or b == "NULL" or a == b:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _merge_structure(a.get(k), b.get(k)) for k in {**a, **b}}
    if isinstance(a, list) and isinstance(b, list):
        return [_merge_structure(a[0] if a else None, b[0] if b else None)]
    if {a, b} <= {"UBIGINT", "BIGINT"}:
        return "BIGINT"
    if {a, b} <= {"UBIGINT", "BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "VARCHAR"  # conflicting kinds: text, as Spark infers


# ---- schema evolution inside structs (addNewColumns) ------------------------------------------------


def evolve(schema: dict[str, str], inferred: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """(columns to add or widen, their new paths) when rows carry fields `schema` lacks: new top-level
    columns, and new fields inside existing structs (lists of structs included), as `addr.zip`. Existing
    fields keep their types; a name equal but for case to an existing one is not a new field (it stays
    rescued)."""
    lower = {k.lower(): k for k in schema}
    changed: dict[str, str] = {}
    paths: list[str] = []
    for name, t in inferred.items():
        old = lower.get(name.lower())
        if old is None:
            changed[name], paths = t, [*paths, name]
            continue
        merged, added = _merge_type(parse_type_tree(schema[old]), parse_type_tree(t), old, 1)
        if added:
            changed[old], paths = render_type_tree(merged), [*paths, *added]
    return changed, paths


def _merge_type(old: Any, new: Any, path: str, depth: int) -> tuple[Any, list[str]]:
    if old[0] == "struct" and new[0] == "struct":
        fields = list(old[1])
        names = {n.lower() for n, _ in fields}
        added: list[str] = []
        for i, (n, t) in enumerate(fields):
            match = next((nt for nn, nt in new[1] if nn == n), None)
            if match is not None:
                sub, more = _merge_type(t, match, f"{path}.{n}", depth + 1)
                fields[i] = (n, sub)
                added += more
        for n, t in new[1]:
            if n and n.lower() not in names and depth < MAX_DEPTH:
                fields.append((n, t))
                names.add(n.lower())
                added.append(f"{path}.{n}")
        return ("struct", fields), added
    if old[0] == "list" and new[0] == "list":
        element, added = _merge_type(old[1], new[1], path, depth + 1)
        return ("list", element), added
    return old, []
