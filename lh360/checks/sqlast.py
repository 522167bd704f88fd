"""The sqlglot building blocks checks are made of: quoted columns, literals, COUNT(CASE …), a spec's rule or
query parsed (never pasted), and SQL generated per dialect with every identifier quoted. sqlglot is imported
inside the functions: lh360 --help never loads it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lh360.checks.typerules import literal as typed
from lh360.checks.typerules import type_rule
from lh360.engines.local.transpile import spark_semantics
from lh360.portability import portable as rewrite
from lh360.sql import DIALECTS, parse_expression, parse_query, resolve

Namer = Callable[[str, str], str]  # (layer, name) → the relation as the engine names it, ready for SQL


def table(text: str, dialect: str) -> Any:
    from sqlglot import exp

    return exp.to_table(text, dialect=DIALECTS[dialect])


def col(name: str, table_alias: str | None = None) -> Any:
    from sqlglot import exp

    return exp.column(
        exp.to_identifier(name, quoted=True),
        table=exp.to_identifier(table_alias, quoted=True) if table_alias else None,
    )


def count_if(cond: Any) -> Any:
    """COUNT(CASE WHEN cond THEN 1 END): 0 on an empty table, the same on every dialect."""
    from sqlglot import exp

    return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))


def literal(value: Any) -> Any:
    return typed(value)


def rule(text: str, dialect: str | None = None, types: Mapping[str, Any] | None = None) -> Any:
    """A spec's boolean rule, parsed as exactly one expression (lh360.sql guards it); with the relation's
    column `types`, its literals typed and Spark's implicit casts made explicit (lh360.checks.typerules); for a
    `dialect`, in the form that means the same on DuckDB and Athena (lh360.portability)."""

    tree, _ = type_rule(parse_expression(text), types)
    return portable(tree, dialect) if dialect else tree


def query(text: str, namer: Namer, dialect: str) -> Any:
    """A spec's query with `layer.name` resolved to the engine's relations, in its portable form."""

    tree = parse_query(text)
    return resolve(portable(tree, dialect), lambda layer, name: table(namer(layer, name), dialect))


def portable(tree: Any, dialect: str) -> Any:
    return rewrite(tree, dialect)


def is_null(node: Any) -> Any:
    from sqlglot import exp

    return exp.Is(this=node, expression=exp.Null())


def not_null(node: Any) -> Any:
    from sqlglot import exp

    return exp.Not(this=is_null(node))


def all_not_null(cols: list[str]) -> Any:
    from sqlglot import exp

    return exp.and_(*[not_null(col(c)) for c in cols])


def distinct_key(cols: list[str], dialect: str) -> Any:
    """A value that is distinct exactly when the key columns are: the column itself, or a row value."""
    from sqlglot import exp

    if len(cols) == 1:
        return col(cols[0])
    parts = [col(c) for c in cols]
    if dialect in ("athena", "trino"):
        return exp.Anonymous(this="ROW", expressions=parts)
    if dialect in ("databricks", "spark"):
        return exp.Anonymous(this="STRUCT", expressions=parts)
    return exp.Tuple(expressions=parts)


def to_sql(tree: Any, dialect: str) -> str:
    """Generate for `dialect`, every identifier quoted; on DuckDB with Spark's semantics first."""

    if dialect == "duckdb":
        tree = tree.copy().transform(spark_semantics)
    return tree.sql(dialect=DIALECTS[dialect], identify=True)
