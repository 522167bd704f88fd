"""not_null: no NULL in each listed column (one result per column)."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CompileContext, CompiledCheck, FailingRows, register


@register
class NotNull(FailingRows):
    kind = "not_null"
    noun = "NULL rows"

    def names(self, check: Any) -> list[str]:
        cols = check.columns
        return [f"{check.name}_{c}" if check.name and len(cols) > 1 else (check.name or f"not_null_{c}") for c in cols]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        out = []
        for column, name in zip(check.columns, names, strict=True):
            cond = sqlast.is_null(sqlast.col(column))
            out.append(
                CompiledCheck(
                    name=name,
                    threshold="0 nulls",
                    column=column,
                    aliases=[ctx.aggregate(sqlast.count_if(cond))],
                    sample_sql=ctx.rows_where(cond),
                    **ctx.base(check),
                )
            )
        return out
