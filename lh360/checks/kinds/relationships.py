"""relationships: every non-NULL value of the column exists in another relation's field (its own query)."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import SAMPLE_ROWS, CompileContext, CompiledCheck, FailingRows, register
from lh360.checks.typerules import NUMERIC, STRING, comparable, spark_type, type_class


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
        field, column = _aligned(
            sqlast.col(check.field, "p"),
            ctx.type_of(check.field, check.to),
            sqlast.col(check.column, "c"),
            ctx.type_of(check.column),
        )
        match = exp.select(exp.Literal.number(1)).from_(parent).where(exp.EQ(this=field, expression=column))
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

    def type_problems(self, check: Any, ctx: CompileContext) -> list[tuple[str, str]]:
        mine, theirs = ctx.type_of(check.column), ctx.type_of(check.field, check.to)
        a, b = type_class(mine), type_class(theirs)
        if comparable(a, b) or {a, b} <= {STRING} | NUMERIC:
            return []
        return [("field", f"{check.column} ({mine}) cannot be compared with {check.to}.{check.field} ({theirs})")]


def _aligned(field: Any, field_type: Any, column: Any, column_type: Any) -> tuple[Any, Any]:
    """A string key against a numeric one: Spark compares them as numbers, Trino not at all; the string side
    is cast (TRY_CAST: a string that is not a number matches nothing)."""
    from sqlglot import exp

    a, b = type_class(field_type), type_class(column_type)
    if a == STRING and b in NUMERIC and (to := spark_type(column_type)) is not None:
        return exp.TryCast(this=field, to=exp.DataType.build(to, dialect="spark")), column
    if b == STRING and a in NUMERIC and (to := spark_type(field_type)) is not None:
        return field, exp.TryCast(this=column, to=exp.DataType.build(to, dialect="spark"))
    return field, column
