"""specs + target → an ordered plan of steps: a value you can print, test and run. Writes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.spec import TableSpec

LAYER_ORDER = {"bronze": 0, "silver": 1, "gold": 2}


@dataclass(frozen=True)
class Step:
    kind: str  # ingest | refine | aggregate
    table: str  # the spec that owns the step
    relation: str  # what the step writes: bronze.clientes, silver.clientes, gold.clientes_por_uf
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


def ingest_detail(target: ResolvedTarget, spec: TableSpec, sample_files: int = 50) -> dict[str, Any]:
    """Pending files and how their inferred schema compares with what bronze stores."""
    import duckdb

    from lh360.delta import open_table
    from lh360.engines.local.ingest import _data_schema, _prepare, infer_schema, pending_files
    from lh360.layout import Lake
    from lh360.types import parse_type

    dt = open_table(Lake(target.lake).table("bronze", spec.table), target.settings.aws)
    pending = pending_files(target, spec, dt)
    detail: dict[str, Any] = {
        "pending_files": len(pending),
        "pending_bytes": sum(f.size for f in pending),
        "files": [f.rel for f in pending[:10]],
        "batches": -(-len(pending) // spec.bronze.max_files_per_batch),
        "schema_evolution": spec.bronze.schema_evolution,
    }
    con = duckdb.connect()
    stored = _data_schema(con, dt) if dt is not None else {}
    hints = {k: parse_type(v) for k, v in spec.bronze.schema_hints.items()}
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="lh360-plan-") as tmp:
        sample = _prepare(pending[:sample_files], target, Path(tmp)) if pending else []
        inferred = {**infer_schema(con, [p.local for p in sample]), **hints} if sample else {}
    con.close()
    if not stored:
        detail["schema"] = {"stored": None, "inferred": inferred}
        detail["schema_changes"] = [{"column": c, "change": "new", "type": t} for c, t in inferred.items()]
    else:
        changes = []
        for col, t in inferred.items():
            if col not in stored:
                outcome = {
                    "addNewColumns": "added to bronze",
                    "failOnNewColumns": "the ingest fails",
                    "rescue": "kept in _rescued_data",
                    "none": "kept in _rescued_data",
                }[spec.bronze.schema_evolution]
                changes.append({"column": col, "change": "new", "type": t, "outcome": outcome})
            elif stored[col] != t and not _widens(t, stored[col]):
                changes.append({"column": col, "change": "type", "stored": stored[col], "type": t,
                                "outcome": "non-fitting values kept in _rescued_data"})
        detail["schema"] = {"stored": stored, "inferred": inferred}
        detail["schema_changes"] = changes
    return detail


def _widens(inferred: str, stored: str) -> bool:
    # an integer sample for a decimal/double column fits
    return inferred == "BIGINT" and (stored.startswith("DECIMAL") or stored == "DOUBLE")


def build_plan(project: Project, target: ResolvedTarget, tables: list[str] | None = None, to: str = "bronze",
               *, inspect: bool = True) -> Plan:
    specs = project.select(tables)
    steps: list[Step] = []
    for spec in specs:
        detail = ingest_detail(target, spec) if inspect and target.engine == "local" else {}
        steps.append(Step("ingest", spec.table, f"bronze.{spec.table}", detail))
    return Plan(target=target.name, engine=target.engine, steps=tuple(steps))
