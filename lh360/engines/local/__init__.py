"""The embedded engine: DuckDB computes, delta-rs writes, on a folder or on S3."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.console import Console, NullConsole
from lh360.engines.base import (
    AggregateResult,
    EngineOptions,
    Explanation,
    ForgetResult,
    IngestResult,
    IngestState,
    MaintainResult,
    MaintenanceWork,
    PlannedStep,
    Progress,
    RefineResult,
    ReplayResult,
    SpecDrift,
)

# modules, not their functions: a function named like its module would hide the module from
# `from lh360.engines.local import ingest`
from lh360.engines.local import aggregate as aggregate_mod
from lh360.engines.local import explain as explain_mod
from lh360.engines.local import forget as forget_mod
from lh360.engines.local import ingest as ingest_mod
from lh360.engines.local import ingest_state as ingest_state_mod
from lh360.engines.local import replay as replay_mod
from lh360.engines.local.forget import purge_relation
from lh360.engines.local.maintain import maintain_table
from lh360.engines.local.refine import refine as refine_table
from lh360.engines.local.refine import spec_drift
from lh360.erasure import Journal, Subject
from lh360.errors import UsageError
from lh360.layout import Lake
from lh360.spec import TableSpec


@dataclass
class LocalEngine:
    target: ResolvedTarget
    options: EngineOptions = field(default_factory=EngineOptions)
    console: Console = field(default_factory=NullConsole)
    name = "local"

    def __post_init__(self) -> None:
        given = self.options.given()
        if given:
            raise UsageError(
                f"{', '.join(given)}: only for runs on a remote engine; "
                f"target {self.target.name!r} runs on the local engine"
            )

    def ingest(self, spec: TableSpec, *, progress: Progress | None = None) -> IngestResult:
        return ingest_mod.ingest(self.target, spec, progress=progress)

    def refine(self, spec: TableSpec, *, full_refresh: bool = False) -> RefineResult:
        """bronze → silver (lh360.engines.local.refine); `full_refresh`: from all of bronze."""

        r = refine_table(self.target, spec, full_refresh=full_refresh).__dict__
        return _copy(RefineResult, {**r, "refine_run": r.get("run"), "run": None, "engine": self.name})

    def aggregate(self, project: Project, relation: str) -> AggregateResult:
        """silver/gold → `relation` (gold.<name>), replaced atomically (lh360.engines.local.aggregate)."""

        return _copy(
            AggregateResult, {**aggregate_mod.aggregate(project, self.target, relation).__dict__, "engine": self.name}
        )

    def ingested(self, spec: TableSpec) -> IngestState:
        """The ingested files (with their size and mtime then) and the quarantined ones."""

        return ingest_state_mod.ingest_state(self.target, spec)

    def explain(self, project: Project, step: PlannedStep, *, inspect: bool = True) -> Explanation:
        return explain_mod.explain(self.target, project, step, inspect=inspect)

    def replay_quarantine(self, spec: TableSpec) -> ReplayResult:
        """Quarantined rows against today's rules; those that pass merged (lh360.engines.local.replay)."""

        return replay_mod.replay(self.target, spec)

    def spec_drift(self, spec: TableSpec) -> SpecDrift | None:
        """Silver's commits record the hash of the spec it was built with (lh360.engines.local.refine)."""

        return spec_drift(self.target, spec)

    def maintain(self, relation: str, work: MaintenanceWork) -> MaintainResult:
        """Compaction, checkpoint, log cleanup, VACUUM of one lake table with delta-rs
        (lh360.engines.local.maintain)."""

        layer, name = relation.split(".", 1)
        uri = Lake(self.target.lake).table(layer, name)
        return maintain_table(uri, self.target.settings.aws, relation, name, work, engine=self.name)

    def forget(self, spec: TableSpec, subject: Subject, journal: Journal) -> ForgetResult:
        """Erase a subject from landing, bronze, silver and quarantine (lh360.engines.local.forget)."""

        return forget_mod.forget(self.target, spec, subject, journal)

    def purge(self, relations: list[str]) -> dict[str, dict[str, int]]:
        """VACUUM, checkpoint and log cleanup of each table (lh360.engines.local.rewrite.purge)."""

        return {relation: purge_relation(self.target, relation) for relation in relations}


def _copy(cls: Any, values: dict[str, Any]) -> Any:
    """An instance of the dataclass `cls` from the values it has fields for."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})
