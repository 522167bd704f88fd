"""Check specs → SQL, built as one sqlglot AST and generated per dialect with every identifier quoted.

All single-table aggregate checks of a relation become ONE query (one scan; on Athena one bill):

    SELECT COUNT(*) AS "c0", COUNT(CASE WHEN "id" IS NULL THEN 1 END) AS "c1", … FROM <relation>

`relationships` (a second table) and `reconcile` (two scalar queries, fused into one SELECT) run as their
own queries. Sample failing rows are a separate query each, run only when a check fails.

Nothing a spec says is pasted into SQL as text: column names become quoted identifiers, accepted values
become literals, and user rules/queries are parsed (one expression or one query, lh360.sql) and embedded
as AST nodes, so a hostile name or value cannot change what the SQL means.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds import CompileContext, CompiledCheck, kind_of
from lh360.checks.kinds.base import SAMPLE_ROWS
from lh360.checks.sqlast import Namer
from lh360.spec import TableSpec
from lh360.sql import quote

__all__ = [
    "SAMPLE_ROWS",
    "CompiledCheck",
    "CompiledChecks",
    "Namer",
    "check_names",
    "compile_relation",
    "type_problems",
]


@dataclass
class CompiledChecks:
    relation: str
    dialect: str
    table_sql: str  # the relation as the engine names it
    aggregate_sql: str | None
    checks: list[CompiledCheck]
    columns: dict[str, Any] = field(default_factory=dict, repr=False)  # alias → its aggregate (sqlglot node)

    def alone_sql(self, check: CompiledCheck) -> str:
        """The fused query cut down to one check's columns (validate re-runs checks one by one when the fused
        query fails)."""
        from sqlglot import exp

        select = [self.columns[a].copy() for a in check.aliases]
        return sqlast.to_sql(exp.select(*select).from_(sqlast.table(self.table_sql, self.dialect)), self.dialect)

    def probe_sql(self) -> str:
        """SELECT COUNT(*) of the relation: whether the engine can read the table at all."""
        from sqlglot import exp

        tree = exp.select(exp.Count(this=exp.Star())).from_(sqlast.table(self.table_sql, self.dialect))
        return sqlast.to_sql(tree, self.dialect)

    def as_dict(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "dialect": self.dialect,
            "aggregate_sql": self.aggregate_sql,
            "checks": [
                {k: v for k, v in c.__dict__.items() if k != "spec"} | {"spec": c.spec.model_dump(mode="json")}
                for c in self.checks
            ],
        }


def default_namer(dialect: str) -> Namer:
    """`layer.name` with both parts quoted: DuckDB's LakeCatalog views; a stand-in for other engines."""

    return lambda layer, name: f"{quote(layer, dialect)}.{quote(name, dialect)}"


def check_names(checks: list[Any]) -> list[list[str]]:
    """The result names of each check entry (not_null on two columns gives two results); the same check
    twice (two row_count entries, say) gets a numeric suffix."""
    out = [kind_of(c).names(c) for c in checks]
    seen: dict[str, int] = {}
    for names in out:
        for i, n in enumerate(names):
            if n in seen:
                seen[n] += 1
                names[i] = f"{n}_{seen[n]}"
            else:
                seen[n] = 1
    return out


def compile_relation(
    spec: TableSpec,
    relation: str,
    runner_or_dialect: Any,
    table_name: Namer | None = None,
    *,
    types: Mapping[str, Any] | None = None,
    types_of: Callable[[str], Mapping[str, Any] | None] | None = None,
    unique_alone: bool = False,
) -> CompiledChecks:
    """Compile the checks `spec` declares for `relation` (layer.name) for a QueryRunner or a dialect name.

    With a runner, tables are named by `runner.table_name`; with a dialect, by `table_name` or
    `default_namer(dialect)`. Each check kind compiles itself (lh360.checks.kinds); their aggregate columns
    are fused into one query. `types` (the relation's column types) and `types_of` (another relation's)
    type the literals of the checks to their columns (checks/typerules.py); `unique_alone` makes unique
    checks queries of their own. Raises SQLError (lh360.sql) for a rule or query that does not parse.
    """
    from sqlglot import exp

    if isinstance(runner_or_dialect, str):
        dialect = runner_or_dialect
        namer = table_name or default_namer(dialect)
    else:
        dialect = runner_or_dialect.dialect
        namer = table_name or runner_or_dialect.table_name
    layer, name = relation.split(".", 1)
    table_text = namer(layer, name)
    checks = spec.checks.get(relation, [])
    select: list[Any] = []

    def aggregate(node: Any) -> str:
        alias = f"c{len(select)}"
        select.append(exp.alias_(node, exp.to_identifier(alias, quoted=True)))
        return alias

    def rows_where(cond: Any) -> str:
        tree = exp.select(exp.Star()).from_(sqlast.table(table_text, dialect)).where(cond).limit(SAMPLE_ROWS)
        return sqlast.to_sql(tree, dialect)

    ctx = CompileContext(relation, dialect, table_text, namer, aggregate, rows_where, types, types_of, unique_alone)
    compiled = [
        c
        for check, names in zip(checks, check_names(checks), strict=True)
        for c in kind_of(check).compile(check, names, ctx)
    ]
    aggregate_sql = None
    if select:
        aggregate_sql = sqlast.to_sql(exp.select(*select).from_(sqlast.table(table_text, dialect)), dialect)
    return CompiledChecks(
        relation=relation,
        dialect=dialect,
        table_sql=table_text,
        aggregate_sql=aggregate_sql,
        checks=compiled,
        columns={node.alias: node for node in select},
    )


def type_problems(
    check: Any, relation: str, types_of: Callable[[str], Mapping[str, Any] | None]
) -> list[tuple[str, str]]:
    """(spec field, reason) for what Athena (Trino) would refuse in one check of `relation`, given the column
    types `types_of` knows (lh360 lint)."""
    ctx = CompileContext(
        relation,
        "athena",
        relation,
        default_namer("athena"),
        lambda node: "",
        lambda cond: "",
        types_of(relation),
        types_of,
    )
    return kind_of(check).type_problems(check, ctx)
