"""Maintenance of a `databricks` target's lake tables: OPTIMIZE and VACUUM on the SQL warehouse.

Each task is one SQL statement on `databricks.warehouse_id` (the Statement Execution API, as validate uses):

    compact      OPTIMIZE `catalog`.`layer`.`name`            bin-packs small files (Databricks' own target
                                                              size, delta.targetFileSize when set)
    vacuum       VACUUM `catalog`.`layer`.`name` RETAIN n HOURS
    checkpoint   Databricks writes a checkpoint by itself every delta.checkpointInterval commits
    log_cleanup  and deletes log files older than delta.logRetentionDuration (30 days) when it does:
                 both are reported as skipped, done by the platform

DESCRIBE DETAIL before and after gives the table's files and bytes; DESCRIBE HISTORY its version. A table
that does not exist yet is skipped. Databricks refuses `RETAIN` under the table's
delta.deletedFileRetentionDuration (7 days) unless that property is lowered on the table: the warehouse's
error is reported as is (exit 3).

Predictive optimization. On Unity Catalog *managed* tables Databricks can run OPTIMIZE, VACUUM and ANALYZE
by itself (predictive optimization, enabled per account, catalog or schema). lh360's tables are *external*
tables at the lake's paths (one layout for every engine and for Athena), which predictive optimization does
not maintain: `lh360 maintain` and the `maintenance:` policy of `lh360 run` do. Where a catalog's tables are
maintained by predictive optimization anyway, turn lh360's tasks off for that target
(`maintenance: {compact: {every: off}, vacuum: {every: off}}`) so the two do not both rewrite files.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from lh360.engines.base import MISSING_TABLE, MaintainResult, MaintenanceWork, RemoteRun
from lh360.engines.databricks.requests import quarantine_table
from lh360.engines.databricks.statements import DatabricksSQLRunner
from lh360.errors import ConfigError, EngineError
from lh360.sql import quote

PLATFORM = "Databricks does it by itself (delta.checkpointInterval, delta.logRetentionDuration)"


def table_name(catalog: str, relation: str) -> str:
    """The Unity Catalog name of a lake table (quarantine.x is registered as silver.x_quarantine)."""

    layer, name = relation.split(".", 1)
    if layer == "quarantine":
        return quarantine_table(catalog, name)
    return ".".join(quote(p, "databricks") for p in (catalog, layer, name))


def maintain(engine: Any, relation: str, work: MaintenanceWork) -> MaintainResult:
    """OPTIMIZE / VACUUM `relation` on the warehouse, as `work` says (see the module docstring)."""

    settings = engine.settings
    if not settings.warehouse_id:
        raise ConfigError(
            "maintenance on a databricks target runs OPTIMIZE and VACUUM on a SQL warehouse: set "
            "databricks.warehouse_id",
            field=f"targets.{engine.target.name}.databricks.warehouse_id",
        )
    started = time.monotonic()
    result = MaintainResult(relation=relation, table=relation.split(".", 1)[1], engine="databricks")
    runner = DatabricksSQLRunner(engine.target, timeout=engine.timeout, client=engine._client)
    name = table_name(settings.catalog, relation)
    detail = _detail(runner, name)
    if detail is None:
        result.skipped = dict.fromkeys(work.tasks(), MISSING_TABLE)
        return result
    result.files_before, result.bytes_before = detail
    result.version_before = _version(runner, name)
    if work.compact:
        metrics = _metrics(runner.execute(f"OPTIMIZE {name}"))
        result.compacted_files = int(metrics.get("numFilesRemoved", 0) or 0)
        result.compacted_into = int(metrics.get("numFilesAdded", 0) or 0)
        result.done.append("compact")
    if work.vacuum:
        hours = math.ceil(work.vacuum_retain / 3600)
        res = runner.execute(f"VACUUM {name} RETAIN {hours} HOURS")
        result.vacuumed_files = len(res.rows)
        result.done.append("vacuum")
    for task in ("checkpoint", "log_cleanup"):
        if getattr(work, task):
            result.skipped[task] = PLATFORM
    after = _detail(runner, name)
    result.files_after, result.bytes_after = after if after is not None else (None, None)
    result.version_after = _version(runner, name)
    result.run = RemoteRun(statements=list(runner.statements))
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _detail(runner: Any, name: str) -> tuple[int, int] | None:
    """(numFiles, sizeInBytes) of DESCRIBE DETAIL; None when the table does not exist."""
    try:
        res = runner.execute(f"DESCRIBE DETAIL {name}")
    except EngineError as exc:
        if "TABLE_OR_VIEW_NOT_FOUND" in f"{exc.message} {exc.detail or ''}":
            return None
        raise
    row = dict(zip(res.columns, res.rows[0], strict=False)) if res.rows else {}
    return int(row.get("numFiles") or 0), int(row.get("sizeInBytes") or 0)


def _version(runner: Any, name: str) -> int | None:
    res = runner.execute(f"DESCRIBE HISTORY {name} LIMIT 1")
    if not res.rows or "version" not in res.columns:
        return None
    return int(res.rows[0][res.columns.index("version")])


def _metrics(res: Any) -> dict[str, Any]:
    """OPTIMIZE's one row: `path`, `metrics` (a struct: numFilesAdded, numFilesRemoved, …)."""
    if not res.rows or "metrics" not in res.columns:
        return {}
    metrics = res.rows[0][res.columns.index("metrics")]
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except ValueError:
            return {}
    return metrics if isinstance(metrics, dict) else {}
