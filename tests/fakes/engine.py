"""A scripted engine for orchestration tests (in the spirit of dlt's `dummy` destination and httpx's
MockTransport): it runs nothing, returns typed results, and raises what a test scripts for a step.

    register()                                   # engine name "fake" in lh360.engines.ENGINES
    FakeEngine.script[("ingest", "b")] = EngineError("boom")
    FakeEngine.calls                             # [("ingest", "a"), ("refine", "a"), ...] in call order

A scripted value is an exception to raise, or a callable called with the engine (to hold a lock, sleep, …).
In a subprocess (`python -m tests.fakes.engine ARGS` runs the CLI with the fake registered), the script comes
from $LH360_FAKE_SCRIPT: {"refine:b": "sleep:5"}; actions are listed in `ACTIONS`.
"""

from __future__ import annotations

import json
import os
import time
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
    MaintainResult,
    MaintenanceWork,
    PlannedStep,
    RefineResult,
)

NAME = "fake"


def register() -> None:
    """Add the fake to the registry (tests that do this in process use the `fake_engine` fixture of
    tests/conftest.py, which removes it afterwards)."""
    register_engine(NAME, "tests.fakes.engine:FakeEngine")
    text = os.environ.get("LH360_FAKE_SCRIPT")
    if text:
        for step, action in json.loads(text).items():
            kind, _, name = step.partition(":")
            FakeEngine.script[(kind, name)] = _action(action)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _swallow_sleep(seconds: float) -> None:
    """Library code that catches every Exception around a long call (as the Databricks SDK's probe did)."""
    try:
        time.sleep(seconds)
    except Exception:  # noqa: BLE001 - the point of the test
        pass


def _interrupt_as_error(seconds: float) -> None:
    """Native code that notices the signal itself and raises its own error (DuckDB: "Query interrupted")."""
    try:
        time.sleep(seconds)
    except BaseException:
        raise RuntimeError("Query interrupted") from None


# pyo3 creates its PanicException type (pyo3_runtime.PanicException, a BaseException) on the first panic; the
# same shape here, since a real panic cannot be produced on demand
PanicException = type("PanicException", (BaseException,), {"__module__": "pyo3_runtime"})


def _panic() -> None:
    raise PanicException("called `Option::unwrap()` on a `None` value")


def _stderr_panics(count: int) -> None:
    """What a Rust runtime prints from its panic hook, straight to file descriptor 2."""
    for i in range(count):
        os.write(2, f"thread 'tokio-rt-worker' panicked at src/io.rs:{i}:5:\nAlready shut down\n".encode())
        os.write(2, b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n")
    _panic()


def _eof() -> None:
    raise EOFError("Compressed file ended before the end-of-stream marker was reached")


ACTIONS = {
    "sleep": lambda arg: lambda engine: _sleep(float(arg)),
    "swallow-sleep": lambda arg: lambda engine: _swallow_sleep(float(arg)),
    "interrupt-as-error": lambda arg: lambda engine: _interrupt_as_error(float(arg)),
    "panic": lambda arg: lambda engine: _panic(),
    "stderr-panics": lambda arg: lambda engine: _stderr_panics(int(arg)),
    "eof": lambda arg: lambda engine: _eof(),
}


def _action(text: str) -> Any:
    name, _, arg = text.partition(":")
    return ACTIONS[name](arg)


def reset() -> None:
    FakeEngine.script.clear()
    FakeEngine.calls.clear()


def unregister() -> None:
    from lh360.engines import ENGINES

    ENGINES.pop(NAME, None)
    reset()


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
        ready = os.environ.get("LH360_FAKE_READY")
        if outcome is not None and ready:  # tell a test driving this process that the scripted step began
            with open(ready, "w") as fh:
                fh.write(f"{kind}:{name}\n")
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            outcome(self)

    def ingest(self, spec: Any, *, progress: Any = None) -> IngestResult:
        self._step("ingest", spec.table)
        return IngestResult(table=spec.table, engine=NAME, files=1, rows=10, bytes=100, bronze_version=1)

    def refine(self, spec: Any, *, full_refresh: bool = False) -> RefineResult:
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

    def spec_drift(self, spec: Any) -> None:
        return None

    def replay_quarantine(self, spec: Any) -> Any:
        from lh360.engines.base import ReplayResult

        self._step("replay", spec.table)
        return ReplayResult(table=spec.table, engine=NAME)

    def maintain(self, relation: str, work: MaintenanceWork) -> MaintainResult:
        self._step("maintain", relation)
        return MaintainResult(relation=relation, table=relation.split(".", 1)[1], engine=NAME, done=work.tasks())


if __name__ == "__main__":
    # the registry loads tests.fakes.engine, not this __main__ copy: register and script that module
    from lh360.cli import main
    from tests.fakes import engine

    engine.register()
    main()
