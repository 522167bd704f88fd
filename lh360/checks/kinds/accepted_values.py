"""accepted_values: every non-NULL value of the column is one of the listed values."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CompileContext, CompiledCheck, FailingRows, register


@register
class AcceptedValues(FailingRows):
    kind = "accepted_values"
    noun = "rows with other values"

    def names(self, check: Any) -> list[str]:
        return [check.name or f"accepted_values_{check.column}"]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        column = sqlast.col(check.column)
        cond = exp.and_(
            sqlast.not_null(column),
            exp.Not(this=exp.In(this=column.copy(), expressions=[sqlast.literal(v) for v in check.values])),
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
