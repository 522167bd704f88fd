"""specs + target → an ordered plan of steps: a value you can print, test and run. Writes nothing.

The steps come from the specs alone (`planned_steps`: ingest, then what `promote --to LAYER` touches, then
the checks); the target's engine explains each one (`Engine.explain`: pending files, the jobs.submit body,
the SQL it would run), and the checks explain themselves in the validator's dialect. This module imports
no engine: the caller hands it one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lh360.checks.compile import compile_relation
from lh360.checks.validate import relations_to_check
from lh360.deps import promote_scope
from lh360.engines import validator_dialect
from lh360.engines.base import PlannedStep

if TYPE_CHECKING:
    from lh360.config import Project, ResolvedTarget
    from lh360.engines.base import Engine

LAYER_ORDER = {"bronze": 0, "silver": 1, "gold": 2}


@dataclass(frozen=True)
class Step:
    kind: str  # ingest | refine | aggregate | validate
    table: str  # the spec that owns the step
    relation: str  # what the step writes (or checks): bronze.clientes, silver.clientes, gold.clientes_por_uf
    detail: dict[str, Any] = field(default_factory=dict)
    sql: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "table": self.table, "relation": self.relation, "sql": self.sql, **self.detail}


@dataclass(frozen=True)
class Plan:
    target: str
    engine: str
    steps: tuple[Step, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "engine": self.engine, "steps": [s.as_dict() for s in self.steps]}


def planned_steps(project: Project, tables: list[str] | None, to: str) -> list[PlannedStep]:
    """The steps `lh360 run` / `promote --to LAYER` would take, in order, from the specs alone."""
    steps = [PlannedStep("ingest", s.table, f"bronze.{s.table}") for s in project.select(tables)]
    if LAYER_ORDER[to] < LAYER_ORDER["silver"]:
        return steps
    scope = promote_scope(project, tables, to)
    owner = {rel: spec.table for spec in project.specs.values() for rel in spec.relations()}
    steps += [PlannedStep("refine", t, f"silver.{t}") for t in scope.silver]
    steps += [PlannedStep("aggregate", owner[rel], rel) for rel in scope.gold]
    for spec, relation in relations_to_check(project, tables, None):
        if LAYER_ORDER[relation.split(".")[0]] <= LAYER_ORDER[to]:
            steps.append(PlannedStep("validate", spec.table, relation))
    return steps


def build_plan(
    project: Project,
    target: ResolvedTarget,
    engine: Engine,
    tables: list[str] | None = None,
    to: str = "bronze",
    *,
    inspect: bool = True,
) -> Plan:
    """Every step with the engine's explanation and SQL (`inspect`: read the lake for pending files and
    watermarks). Writes nothing."""
    steps = []
    for planned in planned_steps(project, tables, to):
        if planned.kind == "validate":
            steps.append(validate_step(project, target, planned))
            continue
        explained = engine.explain(project, planned, inspect=inspect)
        detail = explained.detail
        if planned.kind == "refine" and inspect:
            drift = engine.spec_drift(project.specs[planned.table])
            if drift is not None and drift.due:  # `run` promotes incrementally: say a full refresh is due
                detail = {**detail, "full_refresh_due": drift.advice()}
        steps.append(Step(planned.kind, planned.table, planned.relation, detail, explained.sql))
    return Plan(target=target.name, engine=target.engine, steps=tuple(steps))


def validate_step(project: Project, target: ResolvedTarget, planned: PlannedStep) -> Step:
    """A relation's checks in the validator's dialect: the fused aggregate query and multi-table checks."""
    compiled = compile_relation(
        project.specs[planned.table], planned.relation, validator_dialect(target.settings.validator)
    )
    parts = []
    if compiled.aggregate_sql:
        parts.append("-- every aggregate check in one scan\n" + compiled.aggregate_sql + ";")
    parts += [f"-- {c.name}\n{c.sql};" for c in compiled.checks if c.sql]
    detail = {"checks": [c.name for c in compiled.checks], "engine": target.settings.validator}
    return Step("validate", planned.table, planned.relation, detail, "\n".join(parts))
