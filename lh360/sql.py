"""Spec SQL with sqlglot: parse Spark SQL, find and resolve `bronze.x`/`silver.x`/`gold.x`, transpile.

Users write Spark SQL (what Databricks users know). Each engine gets the same AST with its own names and
dialect. A user fragment must be exactly one expression: `1=1; DROP TABLE x` is refused, not run.

Spec SQL reads the lake and nothing else (`guard`): every table is `layer.name` (or a CTE of the same
query), never a table function (`read_text`, `read_csv`, `read_files`, `query`…) or a path
(``csv.`/etc/passwd` ``), and functions that reach files, settings, secrets, the environment, scripts or
the network (`getenv`, `reflect`, `secret`, `ai_query`, `TRANSFORM … USING`…) are refused. Whoever may
edit a spec must not be able to copy the ops box's files or credentials into tables others query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from lh360.errors import first_line

LAYERS = ("bronze", "silver", "gold")
DIALECTS = {"duckdb": "duckdb", "athena": "athena", "databricks": "databricks", "trino": "trino", "spark": "spark"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Scalar (or table) functions that read files, settings, secrets or the environment, run code or call out,
# on DuckDB, Spark or Databricks. Table functions are refused whatever their name; these names are refused
# anywhere in the tree.
_DENIED_FUNCTIONS = {
    "getenv",
    "current_setting",
    "query",
    "query_table",
    "glob",
    "sniff_csv",
    "json_execute_serialized_sql",
    "reflect",
    "try_reflect",
    "java_method",
    "secret",
    "try_secret",
    "list_secrets",
    "http_request",
    "cloud_files_state",
}
_DENIED_PREFIXES = (
    "read_",
    "parquet_",
    "duckdb_",
    "pragma_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "ai_",
)
_DENIED_SUFFIXES = ("_scan",)

# What may reach outside the lake at all: text without any of these is one plain expression over the row,
# so loading a spec can skip importing sqlglot for it (a tenth of a second on every command).
_MAY_REACH_OUT = re.compile(
    r"[;`]|\$\{|\b(?:select|from|join|lateral|table|using|values|with)\b|\b(?:"
    + "|".join(sorted(_DENIED_FUNCTIONS))
    + "|"
    + "|".join(p + r"\w*" for p in _DENIED_PREFIXES)
    + "|"
    + "|".join(r"\w*" + s for s in _DENIED_SUFFIXES)
    + r")\s*\(",
    re.IGNORECASE,
)


class SQLError(ValueError):
    """Spec SQL that does not parse, or parses to something that is not allowed where it stands."""


def quote_ident(name: object) -> str:
    """A double-quoted SQL identifier (DuckDB, Trino, ANSI), whatever characters `name` holds."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: object) -> str:
    """A single-quoted SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def parse_query(sql: str):
    """A whole query (gold SQL, reconcile sides): exactly one SELECT/WITH statement."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(sql, read="spark") if s is not None]
    except (ParseError, TokenError) as exc:
        raise SQLError(f"SQL does not parse: {first_line(exc, 200)}") from None
    if len(statements) != 1:
        raise SQLError(f"expected one statement, found {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise SQLError(f"expected a SELECT query, found {tree.key.upper()}")
    return guard(tree)


def parse_expression(text: str):
    """A column expression or a boolean rule: exactly one expression, no statement, no subquery tricks."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(str(text), read="spark") if s is not None]
    except (ParseError, TokenError) as exc:
        raise SQLError(f"expression does not parse: {first_line(exc, 200)}") from None
    if len(statements) != 1:
        raise SQLError(f"expected one expression, found {len(statements)} statements")
    tree = statements[0]
    if isinstance(tree, (exp.Query, *_statements())):
        raise SQLError(f"expected an expression, found a {tree.key.upper()} statement")
    return guard(tree)


@lru_cache(maxsize=1)
def _statements() -> tuple[type, ...]:
    """sqlglot's statement nodes (SET, COPY, ATTACH, PRAGMA, USE…): never part of spec SQL."""
    from sqlglot import exp

    names = (
        "Command Create Drop Insert Delete Update Alter Set Copy Pragma Use Describe Merge Transaction Commit "
        "Rollback Cache Uncache Refresh LoadData Attach Detach Install Grant Revoke Analyze Export Summarize Kill "
        "Show TruncateTable QueryTransform"
    ).split()
    return tuple(getattr(exp, n) for n in names if hasattr(exp, n))


def _denied(name: str) -> bool:
    name = name.lower()
    return name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES) or name.endswith(_DENIED_SUFFIXES)


def _function_names(node) -> list[str]:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return [str(node.name)]
    return list(type(node).sql_names())


def guard(tree):
    """`tree` if it reads only the lake's tables (module docstring); SQLError naming what it reaches otherwise."""
    from sqlglot import exp

    statements = _statements()
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    for node in tree.walk():
        if isinstance(node, statements):
            what = "TRANSFORM … USING (a script)" if node.key == "querytransform" else node.key.upper()
            raise SQLError(f"{what} is not allowed in spec SQL")
        if isinstance(node, exp.Table):
            _guard_table(node, ctes)
        elif isinstance(node, exp.Lateral) and isinstance(node.this, exp.Anonymous):
            raise SQLError(f"reads {node.this.name}(…): spec SQL reads the lake's tables, not table functions")
        elif isinstance(node, exp.Func):
            denied = [n for n in _function_names(node) if _denied(n)]
            if denied:
                raise SQLError(f"calls {denied[0].lower()}(): it reaches outside the lake (files, settings or secrets)")
    return tree


def _guard_table(table, ctes: set[str]) -> None:
    from sqlglot import exp

    if not isinstance(table.this, exp.Identifier):
        names = _function_names(table.this) if isinstance(table.this, exp.Func) else [table.this.sql("spark")]
        raise SQLError(
            f"reads {names[0].lower()}(…): spec SQL reads the lake's tables (bronze.x, silver.x, gold.x), "
            "not table functions"
        )
    name, db, catalog = table.name, table.db, table.catalog
    if not catalog and _IDENT.match(name) and (db in LAYERS or (not db and name in ctes)):
        return
    shown = ".".join(p for p in (catalog, db, name) if p)
    raise SQLError(f"reads {shown!r}: spec SQL reads only bronze.<table>, silver.<table> or gold.<table>")


def may_reach_out(text: str) -> bool:
    """Whether `text` could read a table or call a function outside the lake (so it must be parsed to tell)."""
    return bool(_MAY_REACH_OUT.search(text))


def guard_text(text: str) -> None:
    """Parse and guard the expression `text` if it may reach outside the lake; SQLError if it does, or if
    such text does not parse (it could not be checked)."""
    if may_reach_out(text):
        parse_expression(text)


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
