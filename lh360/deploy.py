"""`lh360 deploy`: prepare a cloud target, idempotently. Each *deployer* looks at the target and plans
actions; `--dry-run` shows the plan; otherwise the actions still to do are applied in order.

A deployer is any object with `name`, `plan() -> list[Action]` and `apply(action)`. Deployers are listed
in DEPLOYERS as "module:factory" strings (imported only when deploy runs); `factory(project, target)`
returns a deployer, or None when it has nothing to do for that target. To add one (e.g. Glue tables for
Athena), append its string to DEPLOYERS or call `register_deployer`.

An action's status: `todo` (apply will do it), `ok` (already as wanted), `deferred` (cannot be done yet,
and something else will do it later — the reason says what), `skipped` (needs something the target lacks),
`done` (applied by this run), `refused` (cannot be done as the project stands — a table Athena cannot read —
the reason says why; deploy exits 2 after doing the rest).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lh360.config import Project, ResolvedTarget

DEPLOYERS: list[str] = [
    "lh360.engines.databricks.deploy:deployer",
    "lh360.engines.athena.glue:deployer",  # Glue tables (table_type=DELTA) for targets with an athena section
]


@dataclass
class Action:
    deployer: str
    kind: str  # upload_code | create_schema | register_table | … (the deployer's vocabulary)
    object: str  # what it acts on: a path, a schema, a table
    status: str  # todo | ok | deferred | skipped | done | refused
    reason: str = ""
    sql: str | None = None  # the statement apply runs, when it is SQL
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # the deployer's own notes for apply()

    def as_dict(self) -> dict[str, Any]:
        d = {
            "deployer": self.deployer,
            "kind": self.kind,
            "object": self.object,
            "status": self.status,
            "reason": self.reason,
        }
        if self.sql:
            d["sql"] = self.sql
        return d


class Deployer(Protocol):
    name: str

    def plan(self) -> list[Action]: ...

    def apply(self, action: Action) -> None: ...


@dataclass
class DeployReport:
    target: str
    dry_run: bool
    actions: list[Action]

    @property
    def todo(self) -> list[Action]:
        return [a for a in self.actions if a.status == "todo"]

    @property
    def refused(self) -> list[Action]:
        return [a for a in self.actions if a.status == "refused"]

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for a in self.actions:
            counts[a.status] = counts.get(a.status, 0) + 1
        return {
            "target": self.target,
            "ok": not self.refused,
            "dry_run": self.dry_run,
            "counts": counts,
            "actions": [a.as_dict() for a in self.actions],
        }


def register_deployer(spec: str) -> None:
    """Add a "module:factory" deployer (idempotent)."""
    if spec not in DEPLOYERS:
        DEPLOYERS.append(spec)


def deployers_for(project: Project, target: ResolvedTarget, **options: Any) -> list[Deployer]:
    out = []
    for spec in DEPLOYERS:
        module, _, attr = spec.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        d = factory(project, target, **options)
        if d is not None:
            out.append(d)
    return out


def deploy(
    project: Project,
    target: ResolvedTarget,
    *,
    dry_run: bool = False,
    on_action: Callable[[Action], None] | None = None,
    deployers: list[Deployer] | None = None,
    **options: Any,
) -> DeployReport:
    """Plan every deployer; unless dry_run, apply the `todo` actions in order (each deployer's after its plan)."""
    report = DeployReport(target.name, dry_run, [])
    for d in deployers if deployers is not None else deployers_for(project, target, **options):
        actions = d.plan()
        report.actions += actions
        for action in actions:
            if action.status == "todo" and not dry_run:
                d.apply(action)
                action.status = "done"
            if on_action is not None:
                on_action(action)
    return report
