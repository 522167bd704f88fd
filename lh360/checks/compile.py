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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lh360.spec import (
    AcceptedValues,
    Expression,
    Freshness,
    NotNull,
    Range,
    Reconcile,
    Relationships,
    RowCount,
    TableSpec,
    Unique,
)

SAMPLE_ROWS = 5


@dataclass
class CompiledCheck:
    """One check result to produce: which fused-query columns it reads, or its own query."""

    name: str
    kind: str
    severity: str
    relation: str
    threshold: str
    spec: Any  # the check's model from lh360.spec
    aliases: list[str] = field(default_factory=list)  # columns of the fused query
    sql: str | None = None  # own query (relationships, reconcile)
    sample_sql: str | None = None  # failing rows, run only on failure
    column: str | None = None


@dataclass
class CompiledChecks:
    relation: str
    dialect: str
    table_sql: str  # the relation as the engine names it
    aggregate_sql: str | None
    checks: list[CompiledCheck]

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


Namer = Callable[[str, str], str]


def default_namer(dialect: str) -> Namer:
    """`layer.name` with both parts quoted: DuckDB's LakeCatalog views; a stand-in for other engines."""
    from lh360.sql import quote

    return lambda layer, name: f"{quote(layer, dialect)}.{quote(name, dialect)}"


def _table(text: str, dialect: str):
    from sqlglot import exp

    from lh360.sql import DIALECTS

    return exp.to_table(text, dialect=DIALECTS[dialect])


def _col(name: str, table: str | None = None):
    from sqlglot import exp

    return exp.column(
        exp.to_identifier(name, quoted=True), table=exp.to_identifier(table, quoted=True) if table else None
    )


def _count_if(cond):
    """COUNT(CASE WHEN cond THEN 1 END): 0 on an empty table, the same on every dialect."""
    from sqlglot import exp

    return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))


def _literal(value: Any):
    from sqlglot import exp

    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _rule(text: str):
    from lh360.sql import parse_expression

    return parse_expression(text)


def _query(text: str, namer: Namer, dialect: str):
    from lh360.sql import parse_query, resolve

    tree = parse_query(text)
    return resolve(tree, lambda layer, name: _table(namer(layer, name), dialect))


def _distinct_key(cols: list[str], dialect: str):
    """A value that is distinct exactly when the key columns are: the column itself, or a row value."""
    from sqlglot import exp

    if len(cols) == 1:
        return _col(cols[0])
    parts = [_col(c) for c in cols]
    if dialect in ("athena", "trino"):
        return exp.Anonymous(this="ROW", expressions=parts)
    if dialect in ("databricks", "spark"):
        return exp.Anonymous(this="STRUCT", expressions=parts)
    return exp.Tuple(expressions=parts)


def _all_not_null(cols: list[str]):
    from sqlglot import exp

    return exp.and_(*[exp.Not(this=exp.Is(this=_col(c), expression=exp.Null())) for c in cols])


def _fix_for(tree, dialect: str):
    """Spark semantics on DuckDB (lh360.engines.local.transpile) before generating."""
    if dialect != "duckdb":
        return tree
    from lh360.engines.local.transpile import _fix

    return tree.copy().transform(_fix)


def _sql(tree, dialect: str) -> str:
    from lh360.sql import DIALECTS

    return _fix_for(tree, dialect).sql(dialect=DIALECTS[dialect], identify=True)


def check_names(checks: list[Any]) -> list[list[str]]:
    """The result names of each check entry (not_null on two columns gives two results)."""
    out = []
    for c in checks:
        if isinstance(c, NotNull):
            cols = c.columns
            out.append([f"{c.name}_{x}" if c.name and len(cols) > 1 else (c.name or f"not_null_{x}") for x in cols])
        elif isinstance(c, Unique):
            out.append([c.name or "unique_" + "_".join(c.columns)])
        elif isinstance(c, (AcceptedValues, Freshness, Range)):
            out.append([c.name or f"{c.kind}_{c.column}"])
        elif isinstance(c, Relationships):
            out.append([c.name or f"relationships_{c.column}"])
        elif isinstance(c, RowCount):
            out.append([c.name or "row_count"])
        else:
            out.append([c.name])
    # the same check twice (two row_count entries, say) gets a numeric suffix
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
    spec: TableSpec, relation: str, runner_or_dialect: Any, table_name: Namer | None = None
) -> CompiledChecks:
    """Compile the checks `spec` declares for `relation` (layer.name) for a QueryRunner or a dialect name.

    With a runner, tables are named by `runner.table_name`; with a dialect, by `table_name` or
    `default_namer(dialect)`. Raises SQLError (lh360.sql) for a rule or query that does not parse.
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
    names = check_names(checks)
    select: list[Any] = []
    compiled: list[CompiledCheck] = []

    def agg(node) -> str:
        alias = f"c{len(select)}"
        select.append(exp.alias_(node, exp.to_identifier(alias, quoted=True)))
        return alias

    def rows_where(cond) -> str:
        tree = exp.select(exp.Star()).from_(_table(table_text, dialect)).where(cond).limit(SAMPLE_ROWS)
        return _sql(tree, dialect)

    for check, result_names in zip(checks, names, strict=True):
        base = {"kind": check.kind, "severity": check.severity, "relation": relation, "spec": check}
        if isinstance(check, RowCount):
            bounds = [
                f"min {check.min}" if check.min is not None else "",
                f"max {check.max}" if check.max is not None else "",
                f"change ≤ {check.max_change_pct:g}%" if check.max_change_pct else "",
            ]
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=", ".join(b for b in bounds if b) or "any",
                    aliases=[agg(exp.Count(this=exp.Star()))],
                    **base,
                )
            )
        elif isinstance(check, NotNull):
            for col, rname in zip(check.columns, result_names, strict=True):
                cond = exp.Is(this=_col(col), expression=exp.Null())
                compiled.append(
                    CompiledCheck(
                        name=rname,
                        threshold="0 nulls",
                        column=col,
                        aliases=[agg(_count_if(cond))],
                        sample_sql=rows_where(cond),
                        **base,
                    )
                )
        elif isinstance(check, Unique):
            cols = check.columns
            nonnull = _all_not_null(cols)
            key = _distinct_key(cols, dialect)
            if len(cols) > 1:
                key = exp.Case(ifs=[exp.If(this=nonnull.copy(), true=key)])
            total = _count_if(nonnull.copy()) if len(cols) > 1 else exp.Count(this=_col(cols[0]))
            distinct = exp.Count(this=exp.Distinct(expressions=[key]))
            dup = exp.Sub(this=total, expression=distinct)
            group = [_col(c) for c in cols]
            sample = (
                exp.select(*group, exp.alias_(exp.Count(this=exp.Star()), exp.to_identifier("rows", quoted=True)))
                .from_(_table(table_text, dialect))
                .where(nonnull.copy())
                .group_by(*[g.copy() for g in group])
                .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
                .order_by(exp.Ordered(this=exp.Count(this=exp.Star()), desc=True))
                .limit(SAMPLE_ROWS)
            )
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold="0 duplicates",
                    column=",".join(cols),
                    aliases=[agg(dup)],
                    sample_sql=_sql(sample, dialect),
                    **base,
                )
            )
        elif isinstance(check, AcceptedValues):
            col = _col(check.column)
            cond = exp.and_(
                exp.Not(this=exp.Is(this=col, expression=exp.Null())),
                exp.Not(this=exp.In(this=col.copy(), expressions=[_literal(v) for v in check.values])),
            )
            shown = ", ".join(str(v) for v in check.values[:8]) + (" …" if len(check.values) > 8 else "")
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=f"in [{shown}]",
                    column=check.column,
                    aliases=[agg(_count_if(cond))],
                    sample_sql=rows_where(cond),
                    **base,
                )
            )
        elif isinstance(check, Freshness):
            from lh360.durations import format_duration

            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=f"age ≤ {format_duration(check.max_age)}",
                    column=check.column,
                    aliases=[agg(exp.Max(this=_col(check.column)))],
                    **base,
                )
            )
        elif isinstance(check, Expression):
            rule = exp.paren(_rule(check.rule))
            cond = exp.Not(this=exp.func("COALESCE", rule, exp.false()))
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=f"≤ {check.max_failures} failing rows",
                    aliases=[agg(_count_if(cond))],
                    sample_sql=rows_where(cond.copy()),
                    **base,
                )
            )
        elif isinstance(check, Range):
            col = _col(check.column)
            parts = []
            if check.min is not None:
                parts.append(exp.LT(this=col.copy(), expression=_literal(check.min)))
            if check.max is not None:
                parts.append(exp.GT(this=col.copy(), expression=_literal(check.max)))
            cond = exp.or_(*parts) if len(parts) > 1 else parts[0]
            lo = "-∞" if check.min is None else f"{check.min:g}"
            hi = "∞" if check.max is None else f"{check.max:g}"
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=f"in [{lo}, {hi}]",
                    column=check.column,
                    aliases=[agg(_count_if(cond))],
                    sample_sql=rows_where(cond.copy()),
                    **base,
                )
            )
        elif isinstance(check, Relationships):
            to_layer, to_name = check.to.split(".", 1)
            child = _table(table_text, dialect)
            child.set("alias", exp.TableAlias(this=exp.to_identifier("c", quoted=True)))
            parent = _table(namer(to_layer, to_name), dialect)
            parent.set("alias", exp.TableAlias(this=exp.to_identifier("p", quoted=True)))
            match = (
                exp.select(exp.Literal.number(1))
                .from_(parent)
                .where(exp.EQ(this=_col(check.field, "p"), expression=_col(check.column, "c")))
            )
            cond = exp.and_(
                exp.Not(this=exp.Is(this=_col(check.column, "c"), expression=exp.Null())),
                exp.Not(this=exp.Exists(this=match)),
            )
            count = (
                exp.select(exp.alias_(exp.Count(this=exp.Star()), exp.to_identifier("orphans", quoted=True)))
                .from_(child.copy())
                .where(cond.copy())
            )
            sample = exp.select(exp.Star()).from_(child.copy()).where(cond.copy()).limit(SAMPLE_ROWS)
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=f"every {check.column} in {check.to}.{check.field}",
                    column=check.column,
                    sql=_sql(count, dialect),
                    sample_sql=_sql(sample, dialect),
                    **base,
                )
            )
        elif isinstance(check, Reconcile):
            left = exp.Subquery(this=_query(check.left, namer, dialect))
            right = exp.Subquery(this=_query(check.right, namer, dialect))
            tree = exp.select(
                exp.alias_(left, exp.to_identifier("left", quoted=True)),
                exp.alias_(right, exp.to_identifier("right", quoted=True)),
            )
            compiled.append(
                CompiledCheck(
                    name=result_names[0],
                    threshold=f"|left - right| ≤ {check.tolerance:g}",
                    sql=_sql(tree, dialect),
                    **base,
                )
            )
    aggregate_sql = None
    if select:
        aggregate_sql = _sql(exp.select(*select).from_(_table(table_text, dialect)), dialect)
    return CompiledChecks(
        relation=relation, dialect=dialect, table_sql=table_text, aggregate_sql=aggregate_sql, checks=compiled
    )
