"""expression: a boolean rule over the relation's columns holds for every row (NULL fails), up to
`max_failures`."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CompileContext, CompiledCheck, FailingRows, register
from lh360.checks.typerules import type_rule
from lh360.sql import parse_expression


@register
class Expression(FailingRows):
    kind = "expression"
    noun = "failing rows"

    def names(self, check: Any) -> list[str]:
        return [check.name]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        rule = sqlast.rule(check.rule, ctx.dialect, ctx.types)
        cond = exp.Not(this=exp.func("COALESCE", exp.paren(rule), exp.false()))
        return [
            CompiledCheck(
                name=names[0],
                threshold=f"≤ {check.max_failures} failing rows",
                aliases=[ctx.aggregate(sqlast.count_if(cond))],
                sample_sql=ctx.rows_where(cond.copy()),
                **ctx.base(check),
            )
        ]

    def type_problems(self, check: Any, ctx: CompileContext) -> list[tuple[str, str]]:
        _, problems = type_rule(parse_expression(check.rule), ctx.types)
        return [("rule", reason) for reason in problems]
