"""Spark SQL (what specs are written in) → DuckDB SQL with Spark's meaning, where sqlglot alone differs.

sqlglot transpiles most of it; these rewrites fix what it gets wrong for lh360's data, each checked
against Spark in tests/test_promote_spark_parity.py:

* `to_timestamp(s)` became `CAST(s AS TIMESTAMP)`, which in DuckDB silently drops a UTC offset
  (`11:00-03:00` → 11:00). Spark's TIMESTAMP is an instant: we cast to TIMESTAMPTZ (connection in UTC,
  Spark's session zone on the jobs), so the offset is honoured and offset-less strings mean UTC.
* `to_timestamp(s, fmt)` → `TRY_STRPTIME` (NULL on a bad value, as Spark outside ANSI mode), as an instant.
* `try_to_timestamp(s[, fmt])` (sqlglot does not know it; the ANSI-safe spelling Databricks needs) → the
  same as `to_timestamp(s[, fmt])` above, which already gives NULL on a bad value.
* `initcap`: Spark lower-cases the string and upper-cases the first letter and every letter after a space
  (only ' ' separates words). sqlglot's emulation is right but costs two regex passes per row; ours is a
  split on ' ' and one list transform.
* Casts stay `TRY_CAST` as sqlglot writes them: a bad value becomes NULL (Spark's non-ANSI cast) and an
  expectation can catch it, instead of one bad row stopping the whole refine.
"""

from __future__ import annotations

from functools import lru_cache

from lh360.sql import parse_expression, parse_query


def _initcap(arg):
    import sqlglot
    from sqlglot import exp

    template = sqlglot.parse_one(
        "array_to_string(list_transform(string_split(lower(__lh360_s), ' '), "
        "lambda __lh360_w: upper(__lh360_w[1]) || __lh360_w[2:]), ' ')",
        read="duckdb",
    )
    for column in list(template.find_all(exp.Column)):
        if column.name == "__lh360_s":
            column.replace(arg.copy())
    return template


def _try_to_timestamp(node):
    """try_to_timestamp(s[, fmt]) as sqlglot's own to_timestamp(s[, fmt]) node (which spark_semantics then makes safe)."""
    import sqlglot
    from sqlglot import exp

    args = node.expressions
    fmt = f", {args[1].sql('spark')}" if len(args) == 2 else ""
    parsed = sqlglot.parse_one(f"to_timestamp(__lh360_s{fmt})", read="spark")
    for column in list(parsed.find_all(exp.Column)):
        if column.name == "__lh360_s":
            column.replace(args[0].copy())
    return parsed


def spark_semantics(node):
    """One node of a Spark SQL tree, rewritten so DuckDB gives it Spark's meaning (casts, to_timestamp, …)."""
    from sqlglot import exp

    if (
        isinstance(node, exp.Anonymous)
        and str(node.this).lower() == "try_to_timestamp"
        and 1 <= len(node.expressions) <= 2
    ):
        node = _try_to_timestamp(node)
    if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast) and node.to.this == exp.DataType.Type.TIMESTAMP:
        return exp.TryCast(this=node.this, to=exp.DataType.build("TIMESTAMPTZ"))
    if isinstance(node, exp.StrToTime):
        parsed = exp.StrToTime(this=node.this, format=node.args.get("format"), safe=True)
        return exp.Cast(this=parsed, to=exp.DataType.build("TIMESTAMPTZ"))
    if isinstance(node, exp.Initcap):
        delimiter = node.args.get("expression")
        if delimiter is None or (isinstance(delimiter, exp.Literal) and delimiter.this == " "):
            return _initcap(node.this)
    return node


def to_duckdb(tree, *, identify: bool = False) -> str:
    """A parsed Spark SQL tree (expression or query) as DuckDB SQL with Spark's meaning."""
    fixed = tree.copy().transform(spark_semantics)
    return fixed.sql(dialect="duckdb", identify=identify)


@lru_cache(maxsize=1024)
def expression(text: str) -> str:
    """A Spark SQL column expression or rule (one expression, see lh360.sql.parse_expression) in DuckDB."""

    return to_duckdb(parse_expression(text))


def query(text: str) -> str:
    """A Spark SQL query (gold SQL) in DuckDB; `silver.x`/`gold.x` stay as they are (LakeCatalog views)."""

    return to_duckdb(parse_query(text))
