"""Column types: Spark type names in specs, DuckDB type strings inside the local engine, Delta on disk.

The canonical form in lh360 is a DuckDB type string (`BIGINT`, `DECIMAL(18,2)`, `STRUCT(uf VARCHAR)`),
because the local engine computes in DuckDB and DuckDB converts losslessly to and from Arrow / Delta.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Types Delta (and Spark) cannot store, or that bronze keeps as text, like Auto Loader does for dates.
_AS_TEXT = {
    "DATE",
    "TIME",
    "TIMETZ",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "UUID",
    "JSON",
    "NULL",
    "INTERVAL",
    "BIT",
    "UNKNOWN",
}
_WIDEN = {
    "UBIGINT": "DECIMAL(38,0)",
    "HUGEINT": "DECIMAL(38,0)",
    "UHUGEINT": "DECIMAL(38,0)",
    "UINTEGER": "BIGINT",
    "USMALLINT": "INTEGER",
    "UTINYINT": "SMALLINT",
}


# The common hints, answered without importing sqlglot (a tenth of a second on every CLI run); a test
# checks each against the sqlglot path.
_SIMPLE = {
    "string": "TEXT",
    "bigint": "BIGINT",
    "long": "BIGINT",
    "int": "INT",
    "integer": "INT",
    "smallint": "SMALLINT",
    "short": "SMALLINT",
    "tinyint": "TINYINT",
    "byte": "TINYINT",
    "double": "DOUBLE",
    "float": "REAL",
    "real": "REAL",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "timestamp_ntz": "TIMESTAMP",
    "binary": "BLOB",
}
_DECIMAL = re.compile(r"(?:decimal|dec|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.IGNORECASE)


MAX_DECIMAL_PRECISION = 38  # Spark, Delta, DuckDB and Athena alike


def decimal_problem(precision: int, scale: int) -> str | None:
    """Why decimal(precision, scale) cannot exist on any engine, or None."""
    if not 1 <= precision <= MAX_DECIMAL_PRECISION:
        return f"the precision must be 1 to {MAX_DECIMAL_PRECISION}"
    if not 0 <= scale <= precision:
        return f"the scale must be 0 to the precision ({precision})"
    return None


def type_problems(tree) -> list[str]:
    """Decimal types in a parsed type or SQL tree (casts) that no engine can hold."""
    from sqlglot import exp

    out = []
    nodes = [tree] if isinstance(tree, exp.DataType) else []
    for node in [*nodes, *tree.find_all(exp.DataType)]:
        if node.this != exp.DataType.Type.DECIMAL or not node.expressions:
            continue
        try:
            params = [int(p.this.name) for p in node.expressions]
        except (AttributeError, ValueError):
            continue
        precision, scale = params[0], params[1] if len(params) > 1 else 0
        problem = decimal_problem(precision, scale)
        if problem and f"decimal({precision},{scale}): {problem}" not in out:
            out.append(f"decimal({precision},{scale}): {problem}")
    return out


@lru_cache(maxsize=512)
def parse_type(text: str) -> str:
    """A Spark SQL type (as written in schema_hints) → DuckDB type string; ValueError if it is not a type,
    or not one any engine can hold (decimal(3,5))."""
    simple = _SIMPLE.get(text.strip().lower())
    if simple:
        return simple
    decimal = _DECIMAL.fullmatch(text.strip())
    if decimal:
        precision, scale = int(decimal[1]), int(decimal[2])
        problem = decimal_problem(precision, scale)
        if problem:
            raise ValueError(f"{text!r} is not a possible type: {problem}")
        return f"DECIMAL({precision}, {scale})"
    return _parse_type_sqlglot(text)


def _parse_type_sqlglot(text: str) -> str:
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        dt = exp.DataType.build(text.strip(), dialect="spark")
    except (ParseError, ValueError) as exc:
        raise ValueError(f"{text!r} is not a Spark SQL type ({str(exc).splitlines()[0][:80]})") from None
    if dt.this == exp.DataType.Type.USERDEFINED:
        raise ValueError(f"{text!r} is not a Spark SQL type")
    problems = type_problems(dt)
    if problems:
        raise ValueError(f"{text!r} is not a possible type: {problems[0]}")
    if dt.this == exp.DataType.Type.TIMESTAMP:
        return "TIMESTAMP WITH TIME ZONE"  # Spark's timestamp is an instant
    return dt.sql("duckdb")


@lru_cache(maxsize=512)
def spark_type(duckdb_type: str) -> str:
    """A DuckDB type string → Spark SQL type name (for Auto Loader schema hints and display)."""
    from sqlglot import exp

    return exp.DataType.build(duckdb_type, dialect="duckdb").sql("spark").lower()


def bronze_type(inferred: str) -> str:
    """What bronze stores for a type DuckDB inferred from JSON: dates and odd types stay text, unsigned widen."""
    from sqlglot import exp

    dt = exp.DataType.build(inferred, dialect="duckdb")
    for node in list(dt.find_all(exp.DataType)):
        name = node.sql("duckdb").upper()
        base = name.split("(")[0]
        replacement = "VARCHAR" if base in _AS_TEXT or name.startswith("TIMESTAMP") else _WIDEN.get(base)
        if replacement:
            new = exp.DataType.build(replacement, dialect="duckdb")
            if node is dt:
                dt = new
            else:
                node.replace(new)
    return dt.sql("duckdb")


def top_kind(duckdb_type: str) -> str:
    """Which JSON values fit a column: int, number, decimal, bool, text, object, array, date, timestamp."""
    t = duckdb_type.upper()
    if t.endswith("]"):
        return "array"
    if t.startswith("STRUCT") or t.startswith("MAP"):
        return "object"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t in {"BIGINT", "INT", "INTEGER", "SMALLINT", "TINYINT", "INT8", "INT4", "INT2", "LONG"}:
        return "int"
    if t in {"DOUBLE", "FLOAT", "REAL"}:
        return "number"
    if t == "BOOLEAN":
        return "bool"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    return "text"
