"""freshness: the newest value of a date/timestamp column is at most `max_age` old."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from lh360.checks import sqlast
from lh360.checks.kinds.base import CheckKind, CompileContext, CompiledCheck, JudgeContext, failed, register
from lh360.durations import format_duration
from lh360.jsonable import jsonable


@register
class Freshness(CheckKind):
    kind = "freshness"

    def names(self, check: Any) -> list[str]:
        return [check.name or f"freshness_{check.column}"]

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        from sqlglot import exp

        return [
            CompiledCheck(
                name=names[0],
                threshold=f"age ≤ {format_duration(check.max_age)}",
                column=check.column,
                aliases=[ctx.aggregate(exp.Max(this=sqlast.col(check.column)))],
                **ctx.base(check),
            )
        ]

    def judge(self, compiled: CompiledCheck, values: list[Any], result: Any, ctx: JudgeContext) -> None:
        spec = compiled.spec
        newest = values[0]
        result.observed = jsonable(newest)
        if newest is None:
            failed(result, f"no {spec.column} values: the table is empty or the column is all NULL")
            return
        age = _age(newest, ctx.now)
        if age is None:
            result.status, result.message = "error", f"{spec.column} is not a date or timestamp ({newest!r})"
            return
        result.message = f"newest {spec.column} is {format_duration(age)} old"
        if age > spec.max_age:
            failed(
                result,
                f"newest {spec.column} is {format_duration(age)} old, older than {format_duration(spec.max_age)}",
            )


def _age(value: Any, now: datetime) -> timedelta | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)  # a naive timestamp from the engine is UTC (sessions run in UTC)
        return now - value
    if isinstance(value, date):
        return now - datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None
