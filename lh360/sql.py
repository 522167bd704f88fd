"""Spec SQL with sqlglot: parse Spark SQL, find and resolve `bronze.x`/`silver.x`/`gold.x`, transpile.

Users write Spark SQL (what Databricks users know). Each engine gets the same AST with its own names and
dialect. A user fragment must be exactly one expression: `1=1; DROP TABLE x` is refused, not run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LAYERS = ("bronze", "silver", "gold")
DIALECTS = {"duckdb": "duckdb", "athena": "athena", "databricks": "databricks", "trino": "trino", "spark": "spark"}


class SQLError(ValueError):
    """Spec SQL that does not parse, or parses to something that is not allowed where it stands."""


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def parse_query(sql: str):
    """A whole query (gold SQL, reconcile sides): exactly one SELECT/WITH statement."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
    except (ParseError, TokenError) as exc:
        raise SQLError(f"SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise SQLError(f"expected one statement, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise SQLError(f"expected a SELECT query, found {tree.key.upper()}")
    return tree


def parse_expression(text: str):
    """A column expression or a boolean rule: exactly one expression, no statement, no subquery tricks."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(str(text), read="spark") if s is not None]
    except (ParseError, TokenError) as exc:
        raise SQLError(f"expression does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise SQLError(f"expected one expression, found {len(statements)} statements")
    tree = statements[0]
    if isinstance(tree, (exp.Query, exp.Command, exp.Create, exp.Drop, exp.Insert, exp.Delete, exp.Update, exp.Alter)):
        raise SQLError(f"expected an expression, found a {tree.key.upper()} statement")
    return tree


def table_refs(tree) -> list[tuple[str, str]]:
    """The (layer, name) pairs a query reads, ignoring CTE names."""
    from sqlglot import exp

    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    refs = []
    for table in tree.find_all(exp.Table):
        db, name = table.db, table.name
        if not db and name in ctes:
            continue
        refs.append((db, name))
    return refs


def resolve(tree, mapping: Callable[[str, str], Any]):
    """Copy of `tree` with each `layer.name` table replaced by mapping(layer, name) (an exp.Table or a name)."""
    from sqlglot import exp

    tree = tree.copy()
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not table.db and table.name in ctes:
            continue
        new = mapping(table.db, table.name)
        if isinstance(new, str):
            new = exp.to_table(new)
        alias = table.args.get("alias")
        if alias is None and table.db:
            # keep `silver.clientes.uf`-style qualified column references working
            alias = exp.TableAlias(this=exp.to_identifier(table.name))
        if alias is not None:
            new.set("alias", alias)
        table.replace(new)
    return tree


def to_sql(tree, dialect: str) -> str:
    return tree.sql(dialect=DIALECTS[dialect])


def quote(name: str, dialect: str = "duckdb") -> str:
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql(dialect=DIALECTS[dialect])
