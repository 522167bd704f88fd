"""What every check kind is made of (see lh360/checks/kinds/__init__.py), and the registry of kinds."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from lh360.checks.sqlast import Namer

SAMPLE_ROWS = 5  # failing rows shown per failed check


@dataclass
class CompiledCheck:
    """One check result to produce: which fused-query columns it reads, or its own query."""

    name: str
    kind: str
    severity: str
    relation: str
    threshold: str
    spec: Any  # the check's model from lh360.spec
    aliases: list[str] = field(default_factory=list)  # columns of the fused query
    sql: str | None = None  # own query (relationships, reconcile)
    sample_sql: str | None = None  # failing rows, run only on failure
    column: str | None = None


@dataclass
class CompileContext:
    """What a kind's compiler works with: the relation, its dialect and engine name, and the fused query."""

    relation: str
    dialect: str
    table_text: str  # the relation as the engine names it
    namer: Namer
    aggregate: Callable[[Any], str]  # add an expression to the fused query; returns its column alias
    rows_where: Callable[[Any], str]  # SQL of up to SAMPLE_ROWS rows of the relation matching a condition
    types: Mapping[str, Any] | None = None  # the relation's column types, where known (checks/typerules.py)
    types_of: Callable[[str], Mapping[str, Any] | None] | None = None  # another relation's ("silver.x")
    unique_alone: bool = False  # unique checks run as queries of their own (a large table on Athena)

    def base(self, check: Any) -> dict[str, Any]:
        return {"kind": check.kind, "severity": check.severity, "relation": self.relation, "spec": check}

    def type_of(self, column: str, relation: str | None = None) -> Any:
        """The type of a column of this relation (or of `relation`), None when unknown."""
        types = self.types if relation is None else (self.types_of(relation) if self.types_of else None)
        return (types or {}).get(column)


@dataclass
class JudgeContext:
    previous: dict[tuple[str, str], Any]  # (relation, check) → what the last validate observed
    now: datetime


class CheckKind:
    kind: ClassVar[str]

    def names(self, check: Any) -> list[str]:
        raise NotImplementedError

    def compile(self, check: Any, names: list[str], ctx: CompileContext) -> list[CompiledCheck]:
        raise NotImplementedError

    def judge(self, compiled: CompiledCheck, values: list[Any], result: Any, ctx: JudgeContext) -> None:
        raise NotImplementedError

    def type_problems(self, check: Any, ctx: CompileContext) -> list[tuple[str, str]]:
        """(spec field, reason) for what Athena (Trino) would refuse in this check, given ctx's column types
        (lh360 lint reports them); none by default."""
        return []


class FailingRows(CheckKind):
    """A kind whose one value is a count of failing rows, allowed up to `max_failures` (default 0)."""

    noun: ClassVar[str] = "failing rows"

    def judge(self, compiled: CompiledCheck, values: list[Any], result: Any, ctx: JudgeContext) -> None:
        n = int(values[0] or 0)
        result.observed = result.failing_rows = n
        allowed = getattr(compiled.spec, "max_failures", 0)
        noun = self.noun.replace("rows", "row", 1) if n == 1 else self.noun
        result.message = f"{n:,} {noun}" + self.where(compiled.spec)
        if n > allowed:
            failed(result, result.message + (f" (allowed {allowed})" if allowed else ""))

    def where(self, spec: Any) -> str:
        return ""


def failed(result: Any, message: str) -> None:
    """A check that did not hold: warn or fail by its severity."""
    result.status = "warn" if result.severity == "warn" else "fail"
    result.message = message


KINDS: dict[str, CheckKind] = {}


def register(cls: type[CheckKind]) -> type[CheckKind]:
    KINDS[cls.kind] = cls()
    return cls


def kind_of(check: Any) -> CheckKind:
    return KINDS[check.kind]
