"""`lh360 plan` on the local engine: pending files and schema changes for ingest, the watermark and the DuckDB
SQL of each refine stage, the DuckDB SQL of each gold query. Reads the lake (with `inspect`), writes nothing."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from lh360.config import Project, ResolvedTarget
from lh360.delta import arrow_schema, open_table
from lh360.deps import gold_graph
from lh360.engines.base import Explanation, PlannedStep
from lh360.engines.local.aggregate import gold_sql
from lh360.engines.local.infer import infer_schema
from lh360.engines.local.ingest import data_schema, pending_files
from lh360.engines.local.landing_files import prepare
from lh360.engines.local.refine import describe, refine_sql, watermark
from lh360.layout import Lake
from lh360.spec import TableSpec
from lh360.types import parse_type

_EVOLUTION_OUTCOME = {
    "addNewColumns": "added to bronze",
    "failOnNewColumns": "the ingest fails",
    "rescue": "kept in _rescued_data",
    "none": "kept in _rescued_data",
}


def explain(target: ResolvedTarget, project: Project, step: PlannedStep, *, inspect: bool = True) -> Explanation:
    spec = project.specs[step.table]
    if step.kind == "ingest":
        return Explanation(ingest_detail(target, spec) if inspect else {})
    if step.kind == "refine":
        return refine_explanation(target, spec, inspect=inspect)
    if step.kind == "aggregate":
        detail = {"reads": sorted(gold_graph(project.specs)[step.relation]), "write": "overwrite in one commit"}
        return Explanation(detail, gold_sql(project, step.relation))
    raise ValueError(f"the local engine does not run {step.kind!r} steps")


def ingest_detail(target: ResolvedTarget, spec: TableSpec, sample_files: int = 50) -> dict[str, Any]:
    """Pending files and how their inferred schema compares with what bronze stores."""
    import duckdb

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
    try:
        stored = data_schema(con, dt) if dt is not None else {}
        hints = {k: parse_type(v) for k, v in spec.bronze.schema_hints.items()}
        with tempfile.TemporaryDirectory(prefix="lh360-plan-") as tmp:
            sample = prepare(pending[:sample_files], target, Path(tmp))[0] if pending else []
            inferred = {**infer_schema(con, [p.local for p in sample]), **hints} if sample else {}
    finally:
        con.close()
    detail["schema"] = {"stored": stored or None, "inferred": inferred}
    detail["schema_changes"] = _schema_changes(spec, stored, inferred)
    return detail


def _schema_changes(spec: TableSpec, stored: dict[str, str], inferred: dict[str, str]) -> list[dict[str, Any]]:
    if not stored:
        return [{"column": c, "change": "new", "type": t} for c, t in inferred.items()]
    changes: list[dict[str, Any]] = []
    for col, t in inferred.items():
        if col not in stored:
            outcome = _EVOLUTION_OUTCOME[spec.bronze.schema_evolution]
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
    return changes


def _widens(inferred: str, stored: str) -> bool:
    # an integer sample for a decimal/double column fits
    return inferred == "BIGINT" and (stored.startswith("DECIMAL") or stored == "DOUBLE")


def refine_explanation(target: ResolvedTarget, spec: TableSpec, *, inspect: bool = True) -> Explanation:
    """bronze → silver: the watermark, what is new, and the DuckDB SQL of each stage."""
    assert spec.silver is not None
    detail: dict[str, Any] = describe(spec)
    bronze_columns = None
    if inspect:
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
    if bronze_columns is None and not spec.silver.columns:
        text = "-- bronze does not exist yet: columns are every bronze column not starting with _\n" + text
    return Explanation(detail, text)
