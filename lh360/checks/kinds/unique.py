"""unique: no two rows share the key (one or more columns; rows with a NULL in the key are not compared)."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import SAMPLE_ROWS, CompileContext, CompiledCheck, FailingRows, register


@register
class Unique(FailingRows):
    kind = "unique"
    noun = "duplicate rows"

    def names(self, check: Any) -> list[str]:
        return [check.name or "unique_" + "_".join(check.columns)]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        cols = check.columns
        nonnull = sqlast.all_not_null(cols)
        key = sqlast.distinct_key(cols, ctx.dialect)
        if len(cols) > 1:
            key = exp.Case(ifs=[exp.If(this=nonnull.copy(), true=key)])
        total = sqlast.count_if(nonnull.copy()) if len(cols) > 1 else exp.Count(this=sqlast.col(cols[0]))
        duplicates = exp.Sub(this=total, expression=exp.Count(this=exp.Distinct(expressions=[key])))
        group = [sqlast.col(c) for c in cols]
        sample = (
            exp.select(*group, exp.alias_(exp.Count(this=exp.Star()), exp.to_identifier("rows", quoted=True)))
            .from_(sqlast.table(ctx.table_text, ctx.dialect))
            .where(nonnull.copy())
            .group_by(*[g.copy() for g in group])
            .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
            .order_by(exp.Ordered(this=exp.Count(this=exp.Star()), desc=True))
            .limit(SAMPLE_ROWS)
        )
        if ctx.unique_alone:
            alone: dict[str, Any] = {"sql": sqlast.to_sql(_duplicates_query(cols, nonnull, ctx), ctx.dialect)}
        else:
            alone = {"aliases": [ctx.aggregate(duplicates)]}
        return [
            CompiledCheck(
                name=names[0],
                threshold="0 duplicates",
                column=",".join(cols),
                sample_sql=sqlast.to_sql(sample, ctx.dialect),
                **alone,
                **ctx.base(check),
            )
        ]


def _duplicates_query(cols: list[str], nonnull: Any, ctx: CompileContext) -> Any:
    """The duplicate rows as a query of their own: a GROUP BY, which Athena can spill, where the fused
    query's exact COUNT(DISTINCT) must hold every key in memory (a large table: ctx.unique_alone).

        SELECT COALESCE(SUM(n - 1), 0) AS duplicates FROM (SELECT COUNT(*) AS n FROM t WHERE <key not null>
        GROUP BY <key> HAVING COUNT(*) > 1)
    """
    from sqlglot import exp

    groups = (
        exp.select(exp.alias_(exp.Count(this=exp.Star()), exp.to_identifier("n", quoted=True)))
        .from_(sqlast.table(ctx.table_text, ctx.dialect))
        .where(nonnull.copy())
        .group_by(*[sqlast.col(c) for c in cols])
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    extra = exp.Sub(this=sqlast.col("n"), expression=exp.Literal.number(1))
    total = exp.func("COALESCE", exp.Sum(this=extra), exp.Literal.number(0))
    return exp.select(exp.alias_(total, exp.to_identifier("duplicates", quoted=True))).from_(
        exp.Subquery(this=groups, alias=exp.TableAlias(this=exp.to_identifier("g", quoted=True)))
    )
