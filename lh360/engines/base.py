"""The one seam between the plan and where it runs: a small protocol per engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lh360.config import Project, ResolvedTarget
from lh360.spec import TableSpec

Progress = Callable[..., None]


class StepResult(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class Engine(Protocol):
    """Runs the steps of one target. Each call is one step on one table; it commits or raises."""

    target: ResolvedTarget

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None) -> StepResult: ...

    def refine(self, spec: TableSpec) -> StepResult:
        """bronze → silver: the bronze rows committed since silver's watermark, merged (one commit)."""
        ...

    def aggregate(self, project: Project, relation: str) -> StepResult:
        """Recompute gold.<name> from its SQL and replace it in one atomic commit."""
        ...


def engine_for(target: ResolvedTarget, **options: Any) -> Engine:
    if target.engine == "local":
        from lh360.engines.local import LocalEngine

        return LocalEngine(target)
    if target.engine == "databricks":
        from lh360.engines.databricks import DatabricksEngine  # type: ignore[import-not-found]

        return DatabricksEngine(target, **options)
    raise ValueError(f"unknown engine {target.engine!r}")
