"""reconcile: two scalar queries (say, a gold total and a silver count) agree within `tolerance`."""

from __future__ import annotations

from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CheckKind, CompileContext, CompiledCheck, JudgeContext, failed, register
from lh360.jsonable import jsonable


@register
class Reconcile(CheckKind):
    kind = "reconcile"

    def names(self, check: Any) -> list[str]:
        return [check.name]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        left = exp.Subquery(this=sqlast.query(check.left, ctx.namer, ctx.dialect))
        right = exp.Subquery(this=sqlast.query(check.right, ctx.namer, ctx.dialect))
        tree = exp.select(
            exp.alias_(left, exp.to_identifier("left", quoted=True)),
            exp.alias_(right, exp.to_identifier("right", quoted=True)),
        )
        return [
            CompiledCheck(
                name=names[0],
                threshold=f"|left - right| ≤ {check.tolerance:g}",
                sql=sqlast.to_sql(tree, ctx.dialect),
                **ctx.base(check),
            )
        ]

    def judge(self, compiled: CompiledCheck, values: list[Any], result: Any, ctx: JudgeContext) -> None:
        spec = compiled.spec
        left, right = (values + [None, None])[:2]
        result.observed = {"left": jsonable(left), "right": jsonable(right)}
        diff = abs(_num(left) - _num(right))
        result.message = f"left {jsonable(left)}, right {jsonable(right)}"
        if diff > spec.tolerance:
            failed(
                result,
                f"left {jsonable(left)} ≠ right {jsonable(right)} (difference {diff:g}, tolerance {spec.tolerance:g})",
            )


def _num(v: Any) -> float:
    return 0.0 if v is None else float(v)
