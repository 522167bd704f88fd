"""relationships: every non-NULL value of the column exists in another relation's field (its own query)."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import SAMPLE_ROWS, CompileContext, CompiledCheck, FailingRows, register


@register
class Relationships(FailingRows):
    kind = "relationships"
    noun = "rows without a match"

    def names(self, check: Any) -> list[str]:
        return [check.name or f"relationships_{check.column}"]

    def where(self, spec: Any) -> str:
        return f" in {spec.to}"

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        to_layer, to_name = check.to.split(".", 1)
        child = sqlast.table(ctx.table_text, ctx.dialect)
        child.set("alias", exp.TableAlias(this=exp.to_identifier("c", quoted=True)))
        parent = sqlast.table(ctx.namer(to_layer, to_name), ctx.dialect)
        parent.set("alias", exp.TableAlias(this=exp.to_identifier("p", quoted=True)))
        match = (
            exp.select(exp.Literal.number(1))
            .from_(parent)
            .where(exp.EQ(this=sqlast.col(check.field, "p"), expression=sqlast.col(check.column, "c")))
        )
        cond = exp.and_(sqlast.not_null(sqlast.col(check.column, "c")), exp.Not(this=exp.Exists(this=match)))
        count = (
            exp.select(exp.alias_(exp.Count(this=exp.Star()), exp.to_identifier("orphans", quoted=True)))
            .from_(child.copy())
            .where(cond.copy())
        )
        sample = exp.select(exp.Star()).from_(child.copy()).where(cond.copy()).limit(SAMPLE_ROWS)
        return [
            CompiledCheck(
                name=names[0],
                threshold=f"every {check.column} in {check.to}.{check.field}",
                column=check.column,
                sql=sqlast.to_sql(count, ctx.dialect),
                sample_sql=sqlast.to_sql(sample, ctx.dialect),
                **ctx.base(check),
            )
        ]
