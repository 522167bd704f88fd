"""A scripted engine for orchestration tests (in the spirit of dlt's `dummy` destination and httpx's
MockTransport): it runs nothing, returns typed results, and raises what a test scripts for a step.

    register()                                   # engine name "fake" in lh360.engines.ENGINES
    FakeEngine.script[("ingest", "b")] = EngineError("boom")
    FakeEngine.calls                             # [("ingest", "a"), ("refine", "a"), ...] in call order

A scripted value is an exception to raise, or a callable called with the engine (to hold a lock, sleep, …).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lh360.console import Console, NullConsole
from lh360.engines import register_engine
from lh360.engines.base import (
    AggregateResult,
    EngineOptions,
    Explanation,
    IngestResult,
    IngestState,
    PlannedStep,
    RefineResult,
)

NAME = "fake"


def register() -> None:
    register_engine(NAME, "tests.fakes.engine:FakeEngine")


def reset() -> None:
    FakeEngine.script.clear()
    FakeEngine.calls.clear()


@dataclass
class FakeEngine:
    target: Any
    options: EngineOptions = field(default_factory=EngineOptions)
    console: Console = field(default_factory=NullConsole)
    name = NAME

    script: ClassVar[dict[tuple[str, str], Any]] = {}
    calls: ClassVar[list[tuple[str, str]]] = []

    def _step(self, kind: str, name: str) -> None:
        FakeEngine.calls.append((kind, name))
        outcome = FakeEngine.script.get((kind, name))
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            outcome(self)

    def ingest(self, spec: Any, *, progress: Any = None) -> IngestResult:
        self._step("ingest", spec.table)
        return IngestResult(table=spec.table, engine=NAME, files=1, rows=10, bytes=100, bronze_version=1)

    def refine(self, spec: Any) -> RefineResult:
        self._step("refine", spec.table)
        return RefineResult(table=spec.table, engine=NAME, rows_in=10, rows_out=9, quarantined=1, silver_version=1)

    def aggregate(self, project: Any, relation: str) -> AggregateResult:
        self._step("aggregate", relation)
        owner = next(s.table for s in project.specs.values() if relation in s.relations())
        return AggregateResult(relation=relation, table=owner, engine=NAME, rows_out=3, version=1)

    def ingested(self, spec: Any) -> IngestState:
        return IngestState(-1, set())

    def explain(self, project: Any, step: PlannedStep, *, inspect: bool = True) -> Explanation:
        return Explanation({"engine": NAME}, f"-- {step.kind} {step.relation}")
