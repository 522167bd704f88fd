"""Schema inference from JSON lines, as Auto Loader does on a table's first batch: from a sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lh360.engines.local import lines as lines_mod
from lh360.engines.local.batch_query import LINES, META_TYPES, q


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
                "WHERE starts_with(ltrim(line, ' ' || chr(9) || chr(13)), '{') AND json_valid(line)"
            ).fetchall()[0][0]
            cur.close()
            structure = _merge_structure(structure, part)
    else:
        structure = _sample_structure(con, paths[:sample_files], sample_lines)
    if not structure:
        return {}
    parsed = json.loads(structure) if isinstance(structure, str) else structure
    if not isinstance(parsed, dict):
        return {}
    return {name: _structure_type(t) for name, t in parsed.items() if name not in META_TYPES}


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
        "SELECT json_group_structure(line::JSON) FROM __sample WHERE json_valid(line) AND json_type(line) = 'OBJECT'"
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
        if not t:
            return "VARCHAR"
        fields = ", ".join(f"{q(k)} {_structure_type(v)}" for k, v in t.items())
        return f"STRUCT({fields})"
    if isinstance(t, list):
        return f"{_structure_type(t[0]) if t else 'VARCHAR'}[]"
    return _STRUCTURE_TYPES.get(str(t), "VARCHAR")


def _merge_structure(a: Any, b: Any) -> Any:
    """Two json_group_structure results (JSON text or parsed) → one, as if computed over both inputs."""
    a = json.loads(a) if isinstance(a, str) else a
    b = json.loads(b) if isinstance(b, str) else b
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
