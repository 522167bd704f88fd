"""range: every value of the column within [min, max] (either bound may be left out)."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CompileContext, CompiledCheck, FailingRows, register
from lh360.checks.typerules import NUMERIC, type_class


@register
class Range(FailingRows):
    kind = "range"
    noun = "rows out of range"

    def names(self, check: Any) -> list[str]:
        return [check.name or f"range_{check.column}"]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        column = sqlast.col(check.column)
        parts: list[Any] = []
        if check.min is not None:
            parts.append(exp.LT(this=column.copy(), expression=sqlast.literal(check.min)))
        if check.max is not None:
            parts.append(exp.GT(this=column.copy(), expression=sqlast.literal(check.max)))
        cond = exp.or_(*parts) if len(parts) > 1 else parts[0]
        lo = "-∞" if check.min is None else f"{check.min:g}"
        hi = "∞" if check.max is None else f"{check.max:g}"
        return [
            CompiledCheck(
                name=names[0],
                threshold=f"in [{lo}, {hi}]",
                column=check.column,
                aliases=[ctx.aggregate(sqlast.count_if(cond))],
                sample_sql=ctx.rows_where(cond.copy()),
                **ctx.base(check),
            )
        ]

    def type_problems(self, check: Any, ctx: CompileContext) -> list[tuple[str, str]]:
        column_type = ctx.type_of(check.column)
        cls = type_class(column_type)
        if cls is not None and cls not in NUMERIC:
            return [
                ("column", f"range compares {check.column} ({column_type}) with numbers: Athena (Trino) refuses it")
            ]
        return []
