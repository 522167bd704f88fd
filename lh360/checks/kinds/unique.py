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
        return [
            CompiledCheck(
                name=names[0],
                threshold="0 duplicates",
                column=",".join(cols),
                aliases=[ctx.aggregate(duplicates)],
                sample_sql=sqlast.to_sql(sample, ctx.dialect),
                **ctx.base(check),
            )
        ]
