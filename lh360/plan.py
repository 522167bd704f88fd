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
        sample = _prepare(pending[:sample_files], target, Path(tmp))[0] if pending else []
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
                changes.append(
                    {
                        "column": col,
                        "change": "type",
                        "stored": stored[col],
                        "type": t,
                        "outcome": "non-fitting values kept in _rescued_data",
                    }
                )
        detail["schema"] = {"stored": stored, "inferred": inferred}
        detail["schema_changes"] = changes
    return detail


def _widens(inferred: str, stored: str) -> bool:
    # an integer sample for a decimal/double column fits
    return inferred == "BIGINT" and (stored.startswith("DECIMAL") or stored == "DOUBLE")


def build_plan(
    project: Project,
    target: ResolvedTarget,
    tables: list[str] | None = None,
    to: str = "bronze",
    *,
    inspect: bool = True,
) -> Plan:
    """The steps `lh360 run`/`promote --to LAYER` would take, with their SQL. Reads the lake, writes nothing."""
    if target.engine == "databricks":
        # the Databricks engine plans its own steps (jobs.submit payloads, warehouse SQL)
        try:
            from lh360.engines.databricks import plan_steps  # type: ignore[attr-defined]
        except ImportError:
            plan_steps = None
        if plan_steps is not None:
            return Plan(target=target.name, engine=target.engine, steps=tuple(plan_steps(project, target, tables, to)))
    specs = project.select(tables)
    steps: list[Step] = []
    for spec in specs:
        detail = ingest_detail(target, spec) if inspect and target.engine == "local" else {}
        steps.append(Step("ingest", spec.table, f"bronze.{spec.table}", detail))
    if LAYER_ORDER[to] >= LAYER_ORDER["silver"]:
        from lh360.runner import promote_scope

        scope = promote_scope(project, tables, to)
        for table in scope.silver:
            steps.append(refine_step(project.specs[table], target, inspect=inspect))
        for relation in scope.gold:
            steps.append(aggregate_step(project, relation))
        steps += validate_steps(project, target, tables, to)
    return Plan(target=target.name, engine=target.engine, steps=tuple(steps))


def refine_step(spec: TableSpec, target: ResolvedTarget, *, inspect: bool = True) -> Step:
    """bronze → silver: the watermark, what is new, and the DuckDB SQL of each stage."""
    from lh360.engines.local.refine import describe, refine_sql, watermark

    detail: dict[str, Any] = describe(spec)
    bronze_columns = None
    if inspect and target.engine == "local":
        from lh360.delta import arrow_schema, open_table
        from lh360.layout import Lake

        lake = Lake(target.lake)
        silver = open_table(lake.table("silver", spec.table), target.settings.aws)
        bronze = open_table(lake.table("bronze", spec.table), target.settings.aws)
        w, _ = watermark(silver)
        detail["watermark"] = None if w < 0 else w
        detail["bronze_version"] = None if bronze is None else bronze.version()
        detail["new_bronze_versions"] = 0 if bronze is None else bronze.version() - w
        if bronze is not None:
            bronze_columns = list(arrow_schema(bronze).names)
    sql = refine_sql(spec, bronze_columns)
    text = "\n".join(
        f"-- {stage}\n{body};"
        for stage, body in (
            ("refined: bronze rows since the watermark, projected, one flag per expectation", sql["refined"]),
            ("quarantine rows", sql["quarantine"]),
            ("merge source (deduplicated by keys, newest sequence wins)", sql["merge_source"]),
        )
    )
    if bronze_columns is None and not spec.silver.columns:  # type: ignore[union-attr]
        text = "-- bronze does not exist yet: columns are every bronze column not starting with _\n" + text
    return Step("refine", spec.table, f"silver.{spec.table}", detail, text)


def aggregate_step(project: Project, relation: str) -> Step:
    from lh360.deps import gold_graph, relations
    from lh360.engines.local.aggregate import gold_sql

    owner = relations(project.specs)[relation]
    detail = {"reads": sorted(gold_graph(project.specs)[relation]), "write": "overwrite in one commit"}
    return Step("aggregate", owner.table, relation, detail, gold_sql(project, relation))


def validate_steps(project: Project, target: ResolvedTarget, tables: list[str] | None, to: str) -> list[Step]:
    """One step per relation with checks: its fused aggregate query and the queries of multi-table checks."""
    from lh360.checks.compile import compile_relation
    from lh360.checks.validate import relations_to_check

    dialect = {"duckdb": "duckdb", "athena": "athena", "databricks-sql": "databricks"}[target.settings.validator]
    steps = []
    for spec, relation in relations_to_check(project, tables, None):
        if LAYER_ORDER[relation.split(".")[0]] > LAYER_ORDER[to]:
            continue
        compiled = compile_relation(spec, relation, dialect)
        parts = []
        if compiled.aggregate_sql:
            parts.append("-- every aggregate check in one scan\n" + compiled.aggregate_sql + ";")
        parts += [f"-- {c.name}\n{c.sql};" for c in compiled.checks if c.sql]
        detail = {"checks": [c.name for c in compiled.checks], "engine": target.settings.validator}
        steps.append(Step("validate", spec.table, relation, detail, "\n".join(parts)))
    return steps
