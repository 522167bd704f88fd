"""accepted_values: every non-NULL value of the column is one of the listed values."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CompileContext, CompiledCheck, FailingRows, register
from lh360.checks.typerules import TypeProblem, typed_literal


@register
class AcceptedValues(FailingRows):
    kind = "accepted_values"
    noun = "rows with other values"

    def names(self, check: Any) -> list[str]:
        return [check.name or f"accepted_values_{check.column}"]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        column = sqlast.col(check.column)
        column_type = ctx.type_of(check.column)
        cond = exp.and_(
            sqlast.not_null(column),
            exp.Not(this=exp.In(this=column.copy(), expressions=[_value(v, column_type) for v in check.values])),
        )
        shown = ", ".join(str(v) for v in check.values[:8]) + (" …" if len(check.values) > 8 else "")
        return [
            CompiledCheck(
                name=names[0],
                threshold=f"in [{shown}]",
                column=check.column,
                aliases=[ctx.aggregate(sqlast.count_if(cond))],
                sample_sql=ctx.rows_where(cond),
                **ctx.base(check),
            )
        ]

    def type_problems(self, check: Any, ctx: CompileContext) -> list[tuple[str, str]]:
        column_type = ctx.type_of(check.column)
        out = []
        for i, value in enumerate(check.values):
            try:
                typed_literal(value, column_type)
            except TypeProblem as exc:
                out.append((f"values[{i}]", f"{exc}: Athena (Trino) will not compare it with {check.column}"))
        return out


def _value(value: Any, column_type: Any) -> Any:
    """The value typed to the column's type (Trino will not compare '1' with a bigint); as written when it
    is not of that type: lint reports it, and the engine's error names it."""
    try:
        return typed_literal(value, column_type)
    except TypeProblem:
        return sqlast.literal(value)
