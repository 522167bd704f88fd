"""row_count: the relation's rows within min/max, and (max_change_pct) against the last validate's count."""

from __future__ import annotations

from typing import Any

from lh360.checks.kinds.base import CheckKind, CompileContext, CompiledCheck, JudgeContext, failed, register


@register
class RowCount(CheckKind):
    kind = "row_count"

    def names(self, check: Any) -> list[str]:
        return [check.name or "row_count"]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        bounds = [
            f"min {check.min}" if check.min is not None else "",
            f"max {check.max}" if check.max is not None else "",
            f"change ≤ {check.max_change_pct:g}%" if check.max_change_pct else "",
        ]
        return [
            CompiledCheck(
                name=names[0],
                threshold=", ".join(b for b in bounds if b) or "any",
                aliases=[ctx.aggregate(exp.Count(this=exp.Star()))],
                **ctx.base(check),
            )
        ]

    def judge(self, compiled: CompiledCheck, values: list[Any], result: Any, ctx: JudgeContext) -> None:
        spec = compiled.spec
        n = int(values[0] or 0)
        result.observed = n
        problems = []
        if spec.min is not None and n < spec.min:
            problems.append(f"{n:,} rows, fewer than min {spec.min:,}")
        if spec.max is not None and n > spec.max:
            problems.append(f"{n:,} rows, more than max {spec.max:,}")
        prev = ctx.previous.get((result.relation, result.check))
        msg = f"{n:,} rows"
        if spec.max_change_pct and prev is not None:
            prev_n = int(float(prev))
            change = abs(n - prev_n) * 100.0 / max(prev_n, 1)
            msg += f" (last validate {prev_n:,}, change {change:.1f}%)"
            if change > spec.max_change_pct:
                problems.append(f"{n:,} rows, {change:.1f}% change from {prev_n:,} (max {spec.max_change_pct:g}%)")
        result.message = msg
        if problems:
            failed(result, "; ".join(problems))
